"""The status page in a real browser: Playwright driving Debian's Chromium, headless.

Proves what only a browser can: the page renders and reads right, the
subscribe form works without any script, the CSP lets exactly our inline
style and script run, and the page asks nothing of any host but firebell's.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from bot.clock import SystemClock
from bot.notices.config import NoticesConfig, SegmentConfig
from bot.store.database import create_engine
from bot.store.migrate import migrate
from handlers.status_page import status_page_router
from tests.harness import FirebellServer
from tests.notices.status_rows import add_incident, add_notice, now

playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VAPID_KEY = "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)"
)

Env = Callable[..., dict[str, str]]
Start = Callable[[dict[str, str]], FirebellServer]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


def record_requests(context: Any) -> list[str]:
    """Every request any page or worker of ``context`` makes, as URLs."""
    urls: list[str] = []
    context.on("request", lambda request: urls.append(request.url))
    return urls


def off_host(urls: list[str]) -> list[str]:
    return [url for url in urls if urllib.parse.urlsplit(url).hostname != "127.0.0.1"]


async def test_status_page_renders_subscribes_and_stays_on_host(
    browser: Any, firebell_env: Env, start_firebell: Start
) -> None:
    config = {
        "notices": {"components": ["API", "Dashboard"], "status_page_title": "Acme Status"},
        "notices.segments.customers": {"channels": ["email", "statuspage"], "locales": ["en", "de"]},
        "notices.segments.partners": {"channels": ["email", "statuspage"]},
    }
    server = start_firebell(firebell_env(config=config))
    assert server.firebell is not None
    engine, t = server.firebell.engine, now()

    async def seed() -> None:
        incident = await add_incident(engine, "Checkout errors", opened_at=t - timedelta(hours=1))
        await add_notice(
            engine, incident, "investigating", "We are looking into <errors>.",
            at=t - timedelta(minutes=30), impact="critical", components=["API"],
        )  # fmt: skip
        await add_notice(
            engine, incident, "identified", "Rolling back the 14:02 deploy.",
            at=t - timedelta(minutes=10), impact="critical", components=["API"],
        )  # fmt: skip

    server.run(seed)
    context = await browser.new_context()
    requests = record_requests(context)
    page = await context.new_page()
    console_errors: list[str] = []
    page.on(
        "console", lambda message: console_errors.append(message.text) if message.type == "error" else None
    )

    await page.goto(f"{server.url}/status")
    assert await page.title() == "Acme Status"
    assert await page.locator("#overall").inner_text() == "Major Service Outage"
    incident = page.locator("article.card", has_text="Checkout errors")
    await incident.wait_for(state="visible")
    updates = incident.locator("ol.updates > li")
    assert await updates.count() == 2
    assert "Identified" in await updates.nth(0).inner_text()
    assert "Rolling back the 14:02 deploy." in await updates.nth(0).inner_text()
    assert "We are looking into <errors>." in await updates.nth(1).inner_text()
    assert "Major outage" in await page.locator("#component-api").inner_text()
    # The inline stylesheet is applied (the CSP hash matches): the banner has its border.
    border = await page.locator("#overall").evaluate("e => getComputedStyle(e).borderLeftWidth")
    assert border != "0px"

    await page.fill("#email", "grace@example.com")
    await page.select_option("#segment", "partners")
    await page.click("button[type=submit]")
    await page.wait_for_url("**/status?subscribed=1*")
    await page.locator("#thanks").wait_for(state="visible")
    assert "you are subscribed" in await page.locator("#thanks").inner_text()
    rows = server.sql("select email, segment, locale, source from subscribers")
    assert [tuple(row) for row in rows] == [("grace@example.com", "partners", "en", "status_page")]

    await page.fill("#email", "not-an-address")
    await page.click("button[type=submit]")
    await page.locator("#form-error").wait_for(state="visible")
    assert await page.locator("#email").input_value() == "not-an-address"

    assert not [e for e in console_errors if "Content Security Policy" in e]
    assert requests, "the browser made no request at all"
    assert off_host(requests) == []
    await context.close()


@pytest.fixture
async def push_server(tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    """The status page routes with a VAPID key, on uvicorn in this test's own loop."""
    engine = create_engine(f"sqlite:///{tmp_path / 'push.db'}")
    await migrate(engine)
    notices = NoticesConfig(
        segments={
            "customers": SegmentConfig(channels=["email", "statuspage"]),
            "browsers": SegmentConfig(channels=["push", "statuspage"]),
        }
    )
    app = FastAPI()
    app.include_router(status_page_router(engine, notices, SystemClock(), vapid_public_key=VAPID_KEY))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", engine
    finally:
        server.should_exit = True
        await task
        await engine.dispose()


# The push service itself (FCM, Mozilla's autopush) is the one thing a test
# cannot reach, so the browser's PushManager answers with a made-up
# subscription; everything around it (CSP, the worker, the POST) is real.
FAKE_PUSH = """
PushManager.prototype.getSubscription = function () { return Promise.resolve(null); };
PushManager.prototype.subscribe = function (options) {
  window.__pushOptions = {userVisibleOnly: options.userVisibleOnly,
                          keyLength: new Uint8Array(options.applicationServerKey).length};
  return Promise.resolve({toJSON: function () {
    return {endpoint: "https://push.example/send/browser-1", expirationTime: null,
            keys: {p256dh: "BPk-browser_key", auth: "auth-1"}};
  }});
};
"""


async def test_browser_notifications_button_subscribes(browser: Any, push_server: tuple[str, Any]) -> None:
    url, engine = push_server
    context = await browser.new_context(permissions=["notifications"])
    requests = record_requests(context)
    await context.add_init_script(FAKE_PUSH)
    page = await context.new_page()
    await page.goto(f"{url}/status")
    button = page.get_by_role("button", name="Get browser notifications")
    await button.wait_for(state="visible")  # the inline script ran: its CSP hash matches
    await button.click()
    note = page.locator("#push [data-role=note]")
    await page.locator("#push [data-role=note]:not(:empty)").wait_for()
    assert await note.inner_text() == "Browser notifications are on."
    assert await page.evaluate("window.__pushOptions") == {"userVisibleOnly": True, "keyLength": 65}

    from sqlalchemy import text

    async with engine.connect() as connection:
        rows = (
            await connection.execute(text("select segment, push_endpoint, push_auth from subscribers"))
        ).all()
    assert [tuple(row) for row in rows] == [("browsers", "https://push.example/send/browser-1", "auth-1")]
    assert f"{url}/status/sw.js" in requests
    assert off_host(requests) == []
    await context.close()
