"""The doctor checks what several machines share, when it is configured: the bucket
that keeps pictures and the Redis that keeps budgets and claims; a row each, with
its fix, and the S3 secret never shown."""

from __future__ import annotations

from pathlib import Path

from tests.doctor.conftest import KEY, closed_port, doctor
from tests.support.s3 import S3, SECRET

NOT_USED = {
    "MOONSHOT_API_KEY": KEY,
    "JIMENG_API_URL": "http://127.0.0.1:9",
    "JIMENG_SESSION_ID": "a-session-id-0001",
}


async def test_a_reachable_bucket_and_redis_are_green(
    base_env: dict[str, str], s3: S3, redis: str, tmp_path: Path
) -> None:
    env = {**base_env, **NOT_USED, **s3.env(prefix="doctor"), "REDIS_URL": redis}
    run = await doctor("--json", "--service", "image_worker", env=env, cwd=tmp_path)
    store = run.row("object store")
    assert store["status"] == "ok" and s3.bucket in store["detail"]
    assert "write and delete ok" in store["detail"]
    assert run.row("redis")["status"] == "ok"
    assert "media dir" not in run.checks()
    assert f"MEDIA_STORE=s3://{s3.bucket}/doctor" in run.row("config image_worker")["detail"]
    assert SECRET not in run.out + run.err
    assert not [k for k in s3.object_keys() if "probe" in k], "the probe object is deleted"


async def test_a_missing_bucket_and_a_dead_redis_each_say_what_to_do(
    base_env: dict[str, str], s3: S3, tmp_path: Path
) -> None:
    env = {
        **base_env,
        **NOT_USED,
        **s3.env(),
        "MEDIA_STORE": "s3://no-such-bucket/media",
        "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0",
    }
    run = await doctor("--json", "--service", "image_worker", env=env, cwd=tmp_path)
    assert run.code == 1
    store = run.row("object store")
    assert store["status"] == "fail" and "'no-such-bucket'" in store["detail"]
    assert "does not exist" in store["detail"] and "create the bucket" in store["detail"]
    assert any(fix.startswith("MEDIA_STORE:") for fix in store["fix"])
    redis = run.row("redis")
    assert redis["status"] == "fail" and "REDIS_URL" in redis["fix"][0]
    assert SECRET not in run.out + run.err


async def test_without_an_object_store_or_redis_there_is_no_row_for_them(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    run = await doctor("--json", "--service", "image_worker", env={**base_env, **NOT_USED}, cwd=tmp_path)
    assert "media dir" in run.checks()
    assert not {"object store", "redis"} & run.checks()
