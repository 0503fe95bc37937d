"""A browser journey for ``smoke`` steps: open a page in Chromium (driven by
Playwright), click, fill, and check what a customer would see.

The journey is declarative (goto, click, fill, expect_text, expect_title),
never code. Requests are held to the journey's own host: anything else the
page asks for (analytics, third-party assets) is blocked, and the step is
held to the same address guard as HTTP steps when it runs from Slack.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, Field, model_validator

from bot.errors import IntegrationError, UserError
from bot.runbooks.step import StepContext

if TYPE_CHECKING:
    from playwright.async_api import Route

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class BrowserAction(BaseModel):
    model_config = {"extra": "forbid"}

    goto: str | None = None
    """A path or URL on the journey's host."""
    click: str | None = None
    """A Playwright selector, e.g. ``text=Add to cart`` or ``#buy``."""
    fill: str | None = None
    value: str = ""
    expect_text: str | None = None
    expect_title: str | None = None

    @model_validator(mode="after")
    def _one(self) -> BrowserAction:
        chosen = [
            k
            for k in ("goto", "click", "fill", "expect_text", "expect_title")
            if getattr(self, k) is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                "each browser step does one thing: goto, click, fill, expect_text or expect_title"
            )
        return self


class BrowserJourney(BaseModel):
    model_config = {"extra": "forbid"}

    url: str
    steps: list[BrowserAction] = Field(default_factory=list)
    wait_until: Literal["load", "domcontentloaded", "networkidle"] = "load"


def _describe(action: BrowserAction) -> str:
    if action.goto is not None:
        return f"goto {action.goto}"
    if action.click is not None:
        return f"click {action.click}"
    if action.fill is not None:
        return f"fill {action.fill}"
    if action.expect_text is not None:
        return f"expect text {action.expect_text!r}"
    return f"expect title {action.expect_title!r}"


async def run_journey(
    journey: BrowserJourney, context: StepContext, seconds: float
) -> tuple[bool, str, list[str]]:
    """(passed, summary, report lines)."""
    try:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright
    except ImportError as exc:  # an install without the browser extra
        raise UserError("browser journeys need the `playwright` package installed with firebell") from exc
    start = urlsplit(journey.url)
    if start.scheme not in ("http", "https") or not start.hostname:
        raise UserError(f"{journey.url}: a browser journey starts at an http(s) URL")
    if not context.open_network:
        from bot.diagnostics.ssrf import ResolutionFailed, check_target
        from bot.runbooks.http_check import policy_for

        port = start.port or (443 if start.scheme == "https" else 80)
        try:
            await check_target(start.hostname, port, policy_for(context))
        except ResolutionFailed as exc:
            raise IntegrationError(str(exc), retryable=True) from exc
    executable = context.config.browser_executable
    lines: list[str] = []
    blocked: list[str] = []
    deadline = time.monotonic() + seconds
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()

                async def same_host_only(route: Route) -> None:
                    url = route.request.url
                    if urlsplit(url).hostname == start.hostname or url.startswith("data:"):
                        await route.continue_()
                    else:
                        blocked.append(url)
                        await route.abort()

                await page.route("**/*", same_host_only)
                page.set_default_timeout(max(1.0, deadline - time.monotonic()) * 1000)
                response = await page.goto(journey.url, wait_until=journey.wait_until)
                status = response.status if response is not None else None
                lines.append(f"✓ open {journey.url} → {status}")
                if status is not None and status >= 400:
                    return False, f"{journey.url} answered {status}", lines
                for number, action in enumerate(journey.steps, 1):
                    what = _describe(action)
                    try:
                        if action.goto is not None:
                            await page.goto(urljoin(journey.url, action.goto), wait_until=journey.wait_until)
                        elif action.click is not None:
                            await page.click(action.click)
                        elif action.fill is not None:
                            await page.fill(action.fill, action.value)
                        elif action.expect_text is not None:
                            await page.get_by_text(action.expect_text).first.wait_for()
                        elif action.expect_title is not None:
                            title = await page.title()
                            if action.expect_title not in title:
                                raise AssertionError(f"title is {title!r}")
                    except (PlaywrightError, AssertionError) as exc:
                        reason = str(exc).splitlines()[0][:200]
                        lines.append(f"✗ {number}. {what}: {reason}")
                        return False, f"browser step {number} ({what}) failed: {reason}", lines
                    lines.append(f"✓ {number}. {what}")
            finally:
                await browser.close()
    except PlaywrightError as exc:
        raise IntegrationError(
            f"the browser could not run: {str(exc).splitlines()[0][:200]}", retryable=True
        ) from exc
    if blocked:
        lines.append(f"blocked {len(blocked)} requests to other hosts, e.g. {blocked[0]}")
    return True, f"browser journey passed ({len(journey.steps)} steps)", lines
