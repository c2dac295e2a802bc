"""Moonshot: is the key accepted, on this platform, through the configured proxy?

`GET /users/me/balance` is Moonshot's cheap credential check. The request is made
the way the llm_worker makes its own (services.llm_worker.moonshot.make_client):
the proxy is LLM_PROXY and nothing else, and a loopback base URL is never proxied.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import httpx

from services.common.net import is_loopback
from services.common.settings import FIXES, mask
from services.doctor.environment import redact_url
from services.doctor.report import Row
from services.llm_worker.config import LlmSettings

CHECK = "moonshot"
WRONG_PLATFORM = "a key from api.moonshot.cn gets 401 on api.moonshot.ai and vice versa"
ENV_PROXIES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


def proxy_for(settings: LlmSettings) -> str | None:
    if settings.llm_proxy and not is_loopback(settings.moonshot_base_url):
        return settings.llm_proxy
    return None


def route(settings: LlmSettings) -> str:
    """How the request travels, for the detail column."""
    proxy = proxy_for(settings)
    if proxy:
        said = f"via LLM_PROXY {redact_url(proxy)}"
    elif settings.llm_proxy:
        said = "direct (LLM_PROXY is ignored for a loopback MOONSHOT_BASE_URL)"
    else:
        said = "direct"
    ignored = sorted({v.upper() for v in ENV_PROXIES if os.environ.get(v)})
    if ignored:
        said += f"; {', '.join(ignored)} in the environment is not used (only LLM_PROXY is)"
    return said


async def check_moonshot(settings: LlmSettings, *, wait: float) -> Row:
    key = settings.moonshot_api_key.get_secret_value()
    url = f"{settings.moonshot_base_url}/users/me/balance"
    host = urlsplit(settings.moonshot_base_url).netloc
    try:
        async with httpx.AsyncClient(proxy=proxy_for(settings), trust_env=False, timeout=wait) as http:
            resp = await http.get(url, headers={"Authorization": f"Bearer {key}"})
    except httpx.TimeoutException:
        return _unreachable(settings, f"{host} did not answer within {wait:g} s ({route(settings)})")
    except (httpx.HTTPError, OSError) as exc:
        return _unreachable(settings, f"cannot reach {host} ({route(settings)}): {type(exc).__name__}")
    return _verdict(settings, resp, key=key, host=host)


def _verdict(settings: LlmSettings, resp: httpx.Response, *, key: str, host: str) -> Row:
    status = resp.status_code
    if status == 200:
        return _balance(resp, key=key, host=host, how=route(settings))
    if status == 401:
        return Row.fail(
            CHECK,
            f"key rejected ({mask(key)}) by {host}: {WRONG_PLATFORM}",
            "MOONSHOT_BASE_URL must be the platform that issued the key: https://api.moonshot.cn/v1 for "
            "platform.moonshot.cn, https://api.moonshot.ai/v1 for platform.moonshot.ai; or create a key "
            "there and set MOONSHOT_API_KEY in the llm_worker's environment",
        )
    if status == 403:
        return Row.fail(
            CHECK,
            f"{host} refused the key {mask(key)} (403: permission denied)",
            "check the account's state at the Moonshot platform",
        )
    if status == 404:
        return Row.fail(
            CHECK,
            f"{settings.moonshot_base_url} answered 404 for /users/me/balance",
            f"MOONSHOT_BASE_URL: {FIXES['MOONSHOT_BASE_URL']} (it ends in /v1)",
        )
    if status == 429:
        return Row.fail(
            CHECK,
            f"{host} answered 429: {_error_type(resp)}",
            "exceeded_current_quota_error: top up the account; otherwise lower MOONSHOT_RPM / "
            "MOONSHOT_CONCURRENCY to the account tier",
        )
    return Row.fail(CHECK, f"{host} answered HTTP {status} ({_error_type(resp)})", "try again later")


def _balance(resp: httpx.Response, *, key: str, host: str, how: str) -> Row:
    try:
        balance = float(resp.json()["data"]["available_balance"])
    except (ValueError, KeyError, TypeError):
        return Row.ok(CHECK, f"key {mask(key)} accepted by {host} ({how}); balance not readable")
    if balance <= 0:
        return Row.fail(
            CHECK,
            f"key {mask(key)} accepted by {host}, but the available balance is {balance:.2f}",
            "top up the Moonshot account: every page fails with llm_quota until then",
        )
    return Row.ok(CHECK, f"key {mask(key)} accepted by {host} ({how}); balance {balance:.2f}")


def _unreachable(settings: LlmSettings, detail: str) -> Row:
    if proxy_for(settings):
        fix = f"check that the proxy runs and LLM_PROXY is right ({FIXES['LLM_PROXY']})"
    else:
        fix = (
            "check this host's network to Moonshot; where it is blocked, set LLM_PROXY "
            f"({FIXES['LLM_PROXY']}) in the llm_worker's environment"
        )
    return Row.fail(CHECK, detail, fix)


def _error_type(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error", {})
        return str(err.get("type") or err.get("message") or "no error type")
    except (ValueError, AttributeError):
        return "not JSON"
