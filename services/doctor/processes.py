"""The running services: does each one say it is ready (and why not), and is the
gateway's port free or held by our own gateway?

Every service answers `GET /readyz` with `{"status": "ready"|"not_ready",
"checks": {name: "ok" | reason}}` (200 or 503): the gateway on GATEWAY_PORT, the
workers on their ops ports (LLM_OPS_URL, IMAGE_OPS_URL).
"""

from __future__ import annotations

import socket
from typing import Any

import httpx

from services.doctor.environment import ServiceName
from services.doctor.report import Row


async def check_ready(service: ServiceName, base_url: str, *, setting: str, wait: float) -> Row:
    check = f"{service} ready"
    try:
        async with httpx.AsyncClient(timeout=wait, trust_env=False) as http:
            resp = await http.get(f"{base_url}/readyz")
    except (httpx.HTTPError, OSError) as exc:
        return Row.fail(
            check,
            f"not running: nothing answers at {base_url} ({type(exc).__name__})",
            f"start it (`docker compose up -d {service}` or `python -m services.{service}`) or check the "
            f"container: `docker compose ps {service}`, `docker compose logs {service}`; "
            f"elsewhere than {base_url}? set {setting}",
        )
    body = _json(resp)
    checks = body.get("checks") if isinstance(body, dict) else None
    if resp.status_code not in (200, 503) or not isinstance(checks, dict):
        return Row.fail(
            check,
            f"something else answers at {base_url}: /readyz gave HTTP {resp.status_code}",
            f"another program answers there: free the port for the {service}, or point {setting} at it",
        )
    seen = ", ".join(f"{name} {value}" for name, value in checks.items())
    failing = {str(k): str(v) for k, v in checks.items() if not _fine(v)}
    if resp.status_code == 200 and body.get("status") == "ready" and not failing:
        return Row.ok(check, f"ready ({seen})")
    reasons = "; ".join(f"{k}: {v}" for k, v in failing.items()) or "no reason given"
    return Row.fail(
        check,
        f"running but not ready: {reasons}",
        *(f"{service} {k}: {v}" for k, v in failing.items()),
        f"details in `docker compose logs {service}`",
    )


def _fine(value: object) -> bool:
    # "ok (…)" is ready with a remark, e.g. one of several session ids expired.
    return isinstance(value, str) and (value == "ok" or value.startswith("ok "))


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


async def check_port(host: str, port: int, *, wait: float) -> Row:
    check = f"port {port}"
    if _can_bind(host, port):
        return Row.ok(check, f"free: the gateway can listen on {host}:{port}")
    probe = f"http://127.0.0.1:{port}/healthz"
    try:
        async with httpx.AsyncClient(timeout=wait, trust_env=False) as http:
            resp = await http.get(probe)
        said = _json(resp)
    except (httpx.HTTPError, OSError) as exc:
        said, resp = type(exc).__name__, None
    if resp is not None and resp.status_code == 200 and said == {"status": "alive"}:
        return Row.ok(check, f"held by our gateway ({probe} answers alive)")
    answer = f"HTTP {resp.status_code}" if resp is not None else str(said)
    return Row.fail(
        check,
        f"GATEWAY_PORT {port} is held by something else (GET /healthz: {answer})",
        f"stop what holds port {port} (`ss -ltnp 'sport = :{port}'` names it) or set GATEWAY_PORT "
        "to a free port (and the compose port mapping with it)",
    )


def _can_bind(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: a port with connections in TIME_WAIT is still free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
