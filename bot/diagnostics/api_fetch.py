"""Outgoing HTTP for the infrastructure diagnostics (Prometheus, node_exporter, monitor APIs).

One place turns httpx's exceptions and HTTP error statuses into the project's
``IntegrationError`` (``retryable`` for timeouts, connection failures, 429 and
5xx), so the diagnostics only ever see JSON values or text. Messages name the
service and the URL without its query string, never a credential.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import httpx

from bot.errors import IntegrationError

_BODY_EXCERPT = 200
T = TypeVar("T")


def _where(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_text(response: httpx.Response) -> str:
    """The vendor's own error message when the body carries one, else a short excerpt."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:_BODY_EXCERPT].strip()
    if isinstance(body, dict):
        for key in ("error", "message", "errors"):
            value = body.get(key)
            if isinstance(value, str):
                return value[:_BODY_EXCERPT]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])[:_BODY_EXCERPT]
            if isinstance(value, list) and value:
                return str(value[0])[:_BODY_EXCERPT]
    return response.text[:_BODY_EXCERPT].strip()


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    service: str,
    params: Mapping[str, str | int] | None = None,
    data: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    try:
        response = await client.request(method, url, params=params, data=data, headers=headers)
    except httpx.TimeoutException as exc:
        raise IntegrationError(f"{service}: no answer from {url} in time", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise IntegrationError(f"{service}: cannot reach {url}: {exc}", retryable=True) from exc
    status = response.status_code
    if status < 400:
        return response
    where = _where(response.request.url)
    detail = _error_text(response)
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        raise IntegrationError(
            f"{service} rejected the credentials (HTTP {status} from {where}){suffix}",
            retryable=False,
            code="unauthorized",
        )
    raise IntegrationError(
        f"{service}: HTTP {status} from {where}{suffix}",
        retryable=status == 429 or status >= 500,
        retry_after=_retry_after(response),
        code=str(status),
    )


async def fetch_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    service: str,
    params: Mapping[str, str | int] | None = None,
    data: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The decoded JSON body of a successful response."""
    response = await _send(client, method, url, service=service, params=params, data=data, headers=headers)
    try:
        return response.json()
    except ValueError as exc:
        raise IntegrationError(
            f"{service}: {_where(response.request.url)} did not answer with JSON", retryable=False
        ) from exc


async def fetch_text(
    client: httpx.AsyncClient,
    url: str,
    *,
    service: str,
    headers: Mapping[str, str] | None = None,
) -> str:
    """The text body of a successful GET."""
    response = await _send(client, "GET", url, service=service, headers=headers)
    return response.text


async def gather_all(*calls: Awaitable[T]) -> list[T]:
    """Run calls concurrently and wait for every one before raising the first error.

    Unlike a bare ``asyncio.gather``, no call is left running in the background
    after a sibling failed (it would outlive the HTTP client it uses).
    """
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if not isinstance(result, BaseException)]
