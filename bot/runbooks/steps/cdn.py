"""The ``cdn`` step kind: purge a CDN's cache or move traffic to a backup origin.

It owns the step's arguments, its plan line and the outcome; the provider
wire formats live in ``bot.runbooks.cdn``. Every action changes what
production serves (a purge sends traffic to the origin, a failover moves it),
so every action is destructive and needs approval.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, model_validator

from bot.errors import FirebellError, IntegrationError, UserError
from bot.runbooks.cdn import CdnProvider, CdnResult, Deadline, provider_for
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import StepArgs, StepContext, StepOutcome

CdnAction = Literal["purge_urls", "purge_tags", "purge_all", "failover", "failback"]

_REQUEST_TIMEOUT = 30.0
_SUMMARY_LIMIT = 200


class CdnArgs(StepArgs):
    account: str = Field(min_length=1)
    """Name of a CDN account in ``[runbooks.cdn]``."""
    action: CdnAction
    urls: list[str] = Field(default_factory=list)
    """``purge_urls``: absolute http(s) URLs; CloudFront also takes paths starting
    with ``/`` (``*`` allowed at the end) and uses only the path of a URL."""
    tags: list[str] = Field(default_factory=list)
    """``purge_tags``: Cloudflare cache tags or Fastly surrogate keys."""
    wait_seconds: float = Field(default=0, ge=0, le=3600)
    """CloudFront: wait up to this long (within the step's timeout) for the
    invalidation to complete. Other providers purge at once."""

    @model_validator(mode="after")
    def _fits_action(self) -> CdnArgs:
        # Arguments that the action would ignore are mistakes worth stopping on:
        # `tags` with purge_urls would otherwise purge nothing the author meant.
        if self.action == "purge_urls" and not self.urls:
            raise ValueError("purge_urls needs `urls`")
        if self.action == "purge_tags" and not self.tags:
            raise ValueError("purge_tags needs `tags`")
        if self.urls and self.action != "purge_urls":
            raise ValueError(f"`urls` is only for purge_urls, not {self.action}")
        if self.tags and self.action != "purge_tags":
            raise ValueError(f"`tags` is only for purge_tags, not {self.action}")
        return self


def _preview(items: list[str], keep: int = 3) -> str:
    shown = ", ".join(items[:keep])
    return shown + (f", +{len(items) - keep} more" if len(items) > keep else "")


class CdnStep:
    kind: ClassVar[str] = "cdn"
    args_model: ClassVar[type[StepArgs]] = CdnArgs

    def __init__(self, *, poll_interval: float = 5.0) -> None:
        self._poll_interval = poll_interval

    def describe(self, args: Any) -> str:
        a = _args(args)
        where = f"on CDN account {a.account}"
        if a.action == "purge_urls":
            noun = "URL" if len(a.urls) == 1 else "URLs"
            text = f"Purge {len(a.urls)} {noun} {where}: {_preview(a.urls)}"
        elif a.action == "purge_tags":
            noun = "tag" if len(a.tags) == 1 else "tags"
            text = f"Purge {len(a.tags)} {noun} {where}: {_preview(a.tags)}"
        elif a.action == "purge_all":
            text = f"Purge EVERYTHING cached {where}"
        elif a.action == "failover":
            text = f"Fail over to the backup origin pool {where}"
        else:
            text = f"Fail back to the primary origin pool {where}"
        if a.wait_seconds:
            text += f" (wait up to {a.wait_seconds:g} s for completion)"
        return text

    def destructive(self, args: Any) -> bool:
        return True

    async def run(self, args: Any, context: StepContext) -> StepOutcome:
        a = _args(args)
        account = context.config.cdn.get(a.account)
        if account is None:
            known = ", ".join(sorted(context.config.cdn)) or "none configured"
            raise UserError(f"unknown CDN account {a.account!r} (known: {known})")
        deadline = Deadline(context.timeout)
        timeout = httpx.Timeout(min(_REQUEST_TIMEOUT, max(1.0, context.timeout)))
        failure: FirebellError | None = None
        try:
            async with httpx.AsyncClient(verify=context.ssl_context, timeout=timeout) as client:
                provider = provider_for(
                    account,
                    secrets=context.secrets,
                    client=client,
                    clock=context.clock,
                    deadline=deadline,
                    wait_seconds=a.wait_seconds,
                    poll_interval=self._poll_interval,
                )
                result = await _act(provider, a)
        except (IntegrationError, UserError) as exc:
            failure = _redacted(exc, context.secrets)
            if failure is None:
                raise
        if failure is not None:
            # Raised outside the handler so the unredacted error is not kept as
            # its __context__ (tracebacks are logged).
            raise failure
        summary = f"{provider.name}: {result.summary} ({provider.target})"
        if len(summary) > _SUMMARY_LIMIT:
            summary = summary[: _SUMMARY_LIMIT - 1] + "…"
        output = "\n".join([summary, *result.details])
        data = {"provider": provider.name.lower(), "action": a.action, **result.data}
        return StepOutcome(
            ok=result.ok,
            summary=context.secrets.redact(summary),
            output=context.secrets.redact(output),
            data=data,
        )


def _redacted(exc: IntegrationError | UserError, secrets: SecretStore) -> FirebellError | None:
    """A copy of ``exc`` with secrets redacted, or None when it holds none.

    Providers never put credentials in messages, but a misbehaving server or
    proxy could echo a header back in an error body.
    """
    text = secrets.redact(str(exc))
    if text == str(exc):
        return None
    copy: FirebellError
    if isinstance(exc, IntegrationError):
        copy = IntegrationError(text, retryable=exc.retryable, retry_after=exc.retry_after, code=exc.code)
    else:
        copy = UserError(text)
    # The vendor exception underneath carries no response body; keep it for the traceback.
    copy.__cause__ = exc.__cause__
    return copy


def _args(args: Any) -> CdnArgs:
    if isinstance(args, CdnArgs):
        return args
    return CdnArgs.model_validate(args)


async def _act(provider: CdnProvider, args: CdnArgs) -> CdnResult:
    if args.action == "purge_urls":
        return await provider.purge_urls(args.urls)
    if args.action == "purge_tags":
        return await provider.purge_tags(args.tags)
    if args.action == "purge_all":
        return await provider.purge_all()
    if args.action == "failover":
        return await provider.failover()
    return await provider.failback()


STEP = CdnStep()
