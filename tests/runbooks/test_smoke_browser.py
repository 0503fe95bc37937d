"""``smoke`` steps with a browser journey in Debian's Chromium (Playwright)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.clock import SystemClock
from bot.runbooks.config import RunbooksConfig
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import StepContext
from bot.runbooks.steps.smoke import STEP, SmokeArgs

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed"
)

SHOP = b"""<!DOCTYPE html><html><head><title>Acme shop</title>
<script src="http://tracker.example.invalid/t.js"></script></head>
<body><h1>Shop</h1><button id="buy" onclick="document.getElementById('done').hidden=false">Buy</button>
<input id="email"><p id="done" hidden>Thank you for your order</p></body></html>"""


class Shop(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = (200, SHOP) if self.path in ("/", "/shop") else (404, b"not here")
        self.send_response(status)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return None


@pytest.fixture
def shop() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def context() -> StepContext:
    return StepContext(
        config=RunbooksConfig(),
        secrets=SecretStore({}),
        clock=SystemClock(),
        ssl_context=ssl.create_default_context(),
        timeout=60,
        open_network=True,
    )


async def test_a_journey_clicks_fills_and_checks_what_customers_see(shop: str) -> None:
    args = SmokeArgs.model_validate(
        {
            "browser": {
                "url": f"{shop}/shop",
                "steps": [
                    {"expect_title": "Acme shop"},
                    {"fill": "#email", "value": "smoke@example.com"},
                    {"click": "#buy"},
                    {"expect_text": "Thank you for your order"},
                ],
            }
        }
    )
    outcome = await STEP.run(args, context())
    assert outcome.ok, outcome.output
    assert outcome.summary == "all 1 checks passed"
    assert "✓ 4. expect text 'Thank you for your order'" in outcome.output
    assert "blocked 1 requests to other hosts, e.g. http://tracker.example.invalid/t.js" in outcome.output


async def test_a_missing_text_fails_the_step_with_the_step_that_failed(shop: str) -> None:
    args = SmokeArgs.model_validate(
        {
            "requests": [{"url": f"{shop}/shop"}],
            "browser": {"url": f"{shop}/", "steps": [{"expect_text": "Out of stock"}]},
        }
    )
    slow = context()
    slow.timeout = 3
    outcome = await STEP.run(args, slow)
    assert not outcome.ok
    assert "browser step 1 (expect text 'Out of stock') failed" in outcome.summary
    assert outcome.data == {"failed": 1, "passed": 1}


def test_a_browser_step_does_one_thing() -> None:
    with pytest.raises(ValueError, match="each browser step does one thing"):
        SmokeArgs.model_validate({"browser": {"url": "http://x/", "steps": [{"click": "#a", "goto": "/b"}]}})
    with pytest.raises(ValueError, match="needs `requests`, a `browser` journey, or both"):
        SmokeArgs.model_validate({})
