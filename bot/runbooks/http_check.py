"""One HTTP request with expectations, for the ``http`` and ``smoke`` step kinds.

Every hop (redirects included) is checked by the diagnostics address guard
and connected to the checked address, unless the run trusts its operator
(``StepContext.open_network``). Expectations: status codes, headers (exact
value or ``~regex``), text the body must (or must not) contain, a body regex,
and a time limit.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from bot.diagnostics.ssrf import (
    OPEN_POLICY,
    AddressPolicy,
    GuardedTransport,
    ResolutionFailed,
    chat_policy,
    check_target,
)
from bot.errors import IntegrationError, UserError
from bot.runbooks.step import StepContext

MAX_REDIRECTS = 5
MAX_BODY = 1024 * 1024
USER_AGENT = "firebell-runbook/1"
REDIRECTS = frozenset({301, 302, 303, 307, 308})

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class Expect(BaseModel):
    model_config = {"extra": "forbid"}

    status: list[int] = Field(default_factory=lambda: [200])
    headers: dict[str, str] = Field(default_factory=dict)
    """Header → exact value, or ``~regex`` to search for."""
    body_contains: list[str] = Field(default_factory=list)
    body_lacks: list[str] = Field(default_factory=list)
    body_regex: str | None = None
    max_seconds: float | None = Field(default=None, gt=0)


class Request(BaseModel):
    model_config = {"extra": "forbid"}

    method: Method = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_body: Any = Field(default=None, alias="json")
    follow_redirects: bool = False
    expect: Expect = Field(default_factory=Expect)


@dataclass(frozen=True)
class Checked:
    ok: bool
    line: str
    status: int | None
    seconds: float
    failures: tuple[str, ...]
    headers: dict[str, str]
    body_excerpt: str


def policy_for(context: StepContext) -> AddressPolicy:
    if context.open_network or context.settings is None:
        return OPEN_POLICY
    return chat_policy(context.settings.config.diagnostics)


async def send(request: Request, context: StepContext, seconds_allowed: float) -> Checked:
    """Make the request (following redirects if asked) and check the expectations."""
    url = httpx.URL(request.url)
    if url.scheme not in ("http", "https") or not url.host:
        raise UserError(f"{request.url}: expected an http(s) URL")
    headers = {"user-agent": USER_AGENT, **request.headers}
    content = request.body.encode() if request.body is not None else None
    started = time.monotonic()
    method: str = request.method
    response: httpx.Response | None = None
    body = b""
    for _hop in range(MAX_REDIRECTS + 1):
        response, body = await _one(
            method, url, headers, content, request.json_body, context, seconds_allowed
        )
        if not (
            request.follow_redirects and response.status_code in REDIRECTS and "location" in response.headers
        ):
            break
        url = url.join(response.headers["location"])
        if response.status_code == 303:
            method, content = "GET", None
    seconds = time.monotonic() - started
    assert response is not None
    failures = tuple(_failures(request.expect, response, body, seconds))
    text = body.decode(response.encoding or "utf-8", errors="replace")
    line = f"{request.method} {request.url} → {response.status_code} in {seconds * 1000:.0f} ms"
    return Checked(
        ok=not failures,
        line=line,
        status=response.status_code,
        seconds=seconds,
        failures=failures,
        headers=dict(response.headers),
        body_excerpt=text[:2000],
    )


async def _one(
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    content: bytes | None,
    json_body: Any,
    context: StepContext,
    seconds_allowed: float,
) -> tuple[httpx.Response, bytes]:
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        target = await check_target(url.host, port, policy_for(context))
    except ResolutionFailed as exc:
        raise IntegrationError(str(exc), retryable=True) from exc
    transport = GuardedTransport(target, context.ssl_context)
    try:
        async with (
            httpx.AsyncClient(transport=transport, trust_env=False, timeout=seconds_allowed) as client,
            client.stream(method, url, headers=headers, content=content, json=json_body) as response,
        ):
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size <= MAX_BODY:
                    chunks.append(chunk)
            return response, b"".join(chunks)
    except httpx.TimeoutException as exc:
        raise IntegrationError(f"{method} {url}: timed out", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise IntegrationError(f"{method} {url}: {exc}", retryable=True) from exc


def _failures(expect: Expect, response: httpx.Response, body: bytes, seconds: float) -> list[str]:
    failures: list[str] = []
    if response.status_code not in expect.status:
        failures.append(f"status {response.status_code}, expected {' or '.join(map(str, expect.status))}")
    for name, wanted in expect.headers.items():
        actual = response.headers.get(name)
        if actual is None:
            failures.append(f"header {name} missing")
        elif wanted.startswith("~"):
            if re.search(wanted[1:], actual) is None:
                failures.append(f"header {name}: `{actual}` does not match {wanted[1:]}")
        elif actual != wanted:
            failures.append(f"header {name}: `{actual}`, expected `{wanted}`")
    text = body.decode(response.encoding or "utf-8", errors="replace")
    failures += [f"body lacks `{needle}`" for needle in expect.body_contains if needle not in text]
    failures += [f"body contains `{needle}`" for needle in expect.body_lacks if needle in text]
    if expect.body_regex is not None and re.search(expect.body_regex, text) is None:
        failures.append(f"body does not match {expect.body_regex}")
    if expect.max_seconds is not None and seconds > expect.max_seconds:
        failures.append(f"took {seconds:.2f} s, limit {expect.max_seconds:g} s")
    return failures


def report_lines(checked: Checked) -> str:
    """The full output of one exchange: line, failures, headers, body excerpt."""
    parts = [checked.line]
    parts += [f"  ✗ {failure}" for failure in checked.failures]
    parts += [f"  {name}: {value}" for name, value in checked.headers.items()]
    if checked.body_excerpt:
        parts.append("  body: " + checked.body_excerpt.replace("\n", "\n        ")[:2000])
    return "\n".join(parts)
