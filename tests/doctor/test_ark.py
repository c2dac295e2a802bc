"""The doctor with IMAGE_PROVIDER=ark: the key and the model checked for real, for free."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI

from services.fakes import ark
from services.fakes.serving import BackgroundServer
from tests.doctor.conftest import doctor

ARK_KEY = "ark-doctor-right-key-51a7"
ARK_WRONG = "ark-doctor-wrong-key-0c3d"


async def test_ark_key_and_model_each_get_a_row_with_the_fix(
    base_env: dict[str, str], prefix: str, serve: Callable[[FastAPI], BackgroundServer], tmp_path: Path
) -> None:
    server = serve(ark.create_app(ark.ArkConfig(image_seconds=0.0, keys=frozenset({ARK_KEY}))))
    closed = serve(
        ark.create_app(ark.ArkConfig(image_seconds=0.0, keys=frozenset({ARK_KEY}), open_models=frozenset()))
    )
    env = {**base_env, "RABBITMQ_PREFIX": prefix, "ARK_BASE_URL": f"{server.url}/api/v3"}
    good, wrong, model = await asyncio.gather(
        doctor("--service", "image_worker", "--json", env={**env, "ARK_API_KEY": ARK_KEY}, cwd=tmp_path),
        doctor("--service", "image_worker", "--json", env={**env, "ARK_API_KEY": ARK_WRONG}, cwd=tmp_path),
        doctor(
            "--service",
            "image_worker",
            "--json",
            env={**env, "ARK_API_KEY": ARK_KEY, "ARK_BASE_URL": f"{closed.url}/api/v3"},
            cwd=tmp_path,
        ),
    )
    for run in (good, wrong, model):
        assert ARK_KEY not in run.out + run.err and ARK_WRONG not in run.out + run.err
        assert "jimeng-api" not in run.checks(), "an Ark installation needs no jimeng-api"
        assert "IMAGE_PROVIDER=ark" in run.row("config image_worker")["detail"]

    row = good.row("ark")
    assert row["status"] == "ok" and "…51a7" in row["detail"], row

    row = wrong.row("ark")
    assert wrong.code == 1 and row["status"] == "fail" and "the key was refused (401)" in row["detail"]
    assert "…0c3d" in row["detail"] and any("ARK_API_KEY" in fix for fix in row["fix"])

    row = model.row("ark")
    assert model.code == 1 and row["status"] == "fail" and "the model was refused (404)" in row["detail"]
    assert any("ARK_IMAGE_MODEL" in fix for fix in row["fix"])

    async with httpx.AsyncClient(trust_env=False) as http:
        stats = (await http.get(f"{server.url}/_fake/stats")).json()
    assert stats["paid"] == 0, "checking the key never pays for a picture"


async def test_ark_chosen_without_a_key(base_env: dict[str, str], prefix: str, tmp_path: Path) -> None:
    env = {**base_env, "RABBITMQ_PREFIX": prefix, "IMAGE_PROVIDER": "ark"}
    run = await doctor("--service", "image_worker", "--json", env=env, cwd=tmp_path)
    config = run.row("config image_worker")
    assert run.code == 1 and "ARK_API_KEY is missing" in config["detail"]
    assert run.row("ark")["status"] == "skip"
