"""The status page over real HTTP: firebell on uvicorn, rows written straight into its database."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import SystemClock
from bot.notices.config import NoticesConfig, SegmentConfig
from bot.store.database import create_engine
from bot.store.migrate import migrate
from handlers.status_page import CSS, SCRIPT, status_page_router
from tests.harness import FirebellServer
from tests.notices.status_rows import add_incident, add_notice, now

Env = Callable[..., dict[str, str]]
Start = Callable[[dict[str, str]], FirebellServer]

NOTICES_CONFIG: dict[str, dict[str, Any]] = {
    "notices": {"components": ["API", "Dashboard", "Webhooks"], "status_page_title": "Acme Status"},
    "notices.segments.customers": {"channels": ["email", "statuspage"], "locales": ["en", "de"]},
    "notices.segments.partners": {"channels": ["email", "push", "statuspage"]},
    "notices.segments.ops": {"channels": ["slack", "statuspage"]},
}


@pytest.fixture
def server(firebell_env: Env, start_firebell: Start) -> FirebellServer:
    return start_firebell(firebell_env(config=NOTICES_CONFIG))


def engine_of(server: FirebellServer) -> AsyncEngine:
    assert server.firebell is not None
    return server.firebell.engine


def seed_open_incident(server: FirebellServer) -> int:
    engine, t = engine_of(server), now()

    async def seed() -> int:
        incident = await add_incident(engine, "Checkout <errors>", opened_at=t - timedelta(hours=1))
        await add_notice(
            engine,
            incident,
            "investigating",
            "We see <script>alert(1)</script> errors & timeouts.",
            at=t - timedelta(minutes=40),
            impact="major",
            components=["API"],
        )
        await add_notice(
            engine,
            incident,
            "identified",
            "A bad deploy; rolling back.",
            at=t - timedelta(minutes=20),
            impact="major",
            components=["API", "Webhooks"],
        )
        await add_notice(
            engine, incident, "monitoring", "DRAFT never published", at=t, state="awaiting_approval"
        )
        await add_notice(engine, incident, "resolved", "DRAFT resolution", at=t, state="draft")
        await add_notice(engine, incident, "identified", "EMAIL ONLY", at=t, channels=["email"])
        past = await add_incident(engine, "Slow dashboard", opened_at=t - timedelta(days=3))
        await add_notice(
            engine,
            past,
            "investigating",
            "Dashboard slow.",
            at=t - timedelta(days=3),
            components=["Dashboard"],
        )
        await add_notice(engine, past, "resolved", "Dashboard fine again.", at=t - timedelta(days=2))
        return incident

    return server.run(seed)


def test_status_page_shows_components_incidents_and_escapes_user_text(server: FirebellServer) -> None:
    incident = seed_open_incident(server)
    response = httpx.get(f"{server.url}/status", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text

    assert "<title>Acme Status</title>" in page
    assert "Partial System Outage" in page
    assert re.search(r'id="component-api">.*?partial_outage', page, re.S)
    assert re.search(r'id="component-webhooks">.*?partial_outage', page, re.S)
    assert re.search(r'id="component-dashboard">.*?operational', page, re.S)
    assert f'id="firebell-incident-{incident}"' in page
    assert "Checkout &lt;errors&gt;" in page
    assert "We see &lt;script&gt;alert(1)&lt;/script&gt; errors &amp; timeouts." in page
    assert "<script>alert(1)" not in page
    assert page.index("A bad deploy") < page.index("We see")  # newest first
    assert "Slow dashboard" in page and "Dashboard fine again." in page
    for hidden in ("DRAFT", "EMAIL ONLY"):
        assert hidden not in page
    # Self-contained: nothing is loaded from elsewhere.
    assert not re.search(r'(src|href|action)="(https?:)?//', page)
    assert "<script" not in page  # no push key configured: no script at all


def test_status_page_security_headers_allow_exactly_the_inline_blocks(server: FirebellServer) -> None:
    response = httpx.get(f"{server.url}/status", timeout=10)
    csp = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    style_hash = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert directives["style-src"] == f"'sha256-{style_hash}'"
    assert directives["script-src"] == f"'sha256-{script_hash}'"
    assert "unsafe-inline" not in csp
    assert directives["form-action"] == "'self'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert f"<style>{CSS}</style>" in response.text


def test_subscribe_form_offers_only_email_segments(server: FirebellServer) -> None:
    page = httpx.get(f"{server.url}/status", timeout=10).text
    options = re.findall(r'<option value="([^"]+)"', page.split('id="segment"')[1].split("</select>")[0])
    assert options == ["customers", "partners"]
    locales = re.findall(r'<option value="([^"]+)"', page.split('id="locale"')[1].split("</select>")[0])
    assert locales == ["en", "de"]
    assert 'method="post" action="status/subscribe"' in page


def subscribers(server: FirebellServer) -> list[Any]:
    return server.sql(
        "select email, segment, locale, components, source, unsubscribed_at from subscribers order by id"
    )


def test_subscribe_stores_the_address_and_redirects_to_a_thank_you(server: FirebellServer) -> None:
    form = {"email": " Ada@Example.COM ", "segment": "customers", "locale": "de", "components": ["API"]}
    response = httpx.post(f"{server.url}/status/subscribe", data=form, timeout=10)
    assert response.status_code == 303
    assert response.headers["location"] == "/status?subscribed=1#thanks"
    assert subscribers(server) == [("ada@example.com", "customers", "de", '["API"]', "status_page", None)]

    thanks = httpx.get(f"{server.url}/status?subscribed=1", timeout=10).text
    assert "Thank you: you are subscribed." in thanks
    assert "Thank you" not in httpx.get(f"{server.url}/status", timeout=10).text


def test_subscribing_again_reactivates_instead_of_duplicating(server: FirebellServer) -> None:
    url = f"{server.url}/status/subscribe"
    httpx.post(url, data={"email": "ada@example.com", "segment": "customers", "locale": "en"}, timeout=10)
    server.run(lambda: _unsubscribe_everyone(engine_of(server)))
    assert subscribers(server)[0][5] is not None
    again = {"email": "ADA@example.com", "segment": "customers", "locale": "de"}
    assert httpx.post(url, data=again, timeout=10).status_code == 303
    assert subscribers(server) == [("ada@example.com", "customers", "de", "[]", "status_page", None)]
    # The same address in another segment is another subscription.
    other = {"email": "ada@example.com", "segment": "partners", "locale": "en"}
    assert httpx.post(url, data=other, timeout=10).status_code == 303
    assert [(r[0], r[1]) for r in subscribers(server)] == [
        ("ada@example.com", "customers"),
        ("ada@example.com", "partners"),
    ]


async def _unsubscribe_everyone(engine: AsyncEngine) -> None:
    from sqlalchemy import text

    async with engine.begin() as connection:
        await connection.execute(text("update subscribers set unsubscribed_at = created_at"))


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"email": "not an <b>address</b>", "segment": "customers", "locale": "en"}, "valid email"),
        ({"email": "ada@example.com", "segment": "ops", "locale": "en"}, "which updates"),
        ({"email": "ada@example.com", "segment": "partners", "locale": "de"}, "language"),
        (
            {"email": "ada@example.com", "segment": "customers", "locale": "en", "components": "Nope"},
            "components",
        ),
    ],
)
def test_a_bad_form_is_shown_again_with_its_error(
    server: FirebellServer, form: dict[str, str], error: str
) -> None:
    response = httpx.post(f"{server.url}/status/subscribe", data=form, timeout=10)
    assert response.status_code == 400
    assert 'role="alert"' in response.text and error in response.text
    assert "<b>address</b>" not in response.text
    if "<b>" in form["email"]:
        assert 'value="not an &lt;b&gt;address&lt;/b&gt;"' in response.text
    assert response.headers["content-security-policy"]
    assert subscribers(server) == []


def test_atom_feed_is_valid_and_newest_first(server: FirebellServer) -> None:
    incident = seed_open_incident(server)
    response = httpx.get(f"{server.url}/status/feed.atom", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    root = ElementTree.fromstring(response.content)
    entries = root.findall("a:entry", ns)
    titles = [e.findtext("a:title", namespaces=ns) for e in entries]
    assert titles == [
        "Identified: Checkout <errors>",
        "Investigating: Checkout <errors>",
        "Resolved: Slow dashboard",
        "Investigating: Slow dashboard",
    ]
    updated = [e.findtext("a:updated", namespaces=ns) or "" for e in entries]
    assert updated == sorted(updated, reverse=True)
    assert all(e.findtext("a:id", namespaces=ns) for e in entries)
    assert entries[1].findtext("a:content", namespaces=ns) == (
        "We see <script>alert(1)</script> errors & timeouts."
    )
    link = entries[0].find("a:link", ns)
    assert link is not None and link.get("href") == f"{server.url}/status#firebell-incident-{incident}"
    assert root.find("a:link[@rel='self']", ns) is not None


def test_summary_json_is_statuspage_compatible(server: FirebellServer) -> None:
    incident = seed_open_incident(server)
    response = httpx.get(f"{server.url}/api/v2/summary.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    summary = response.json()
    assert summary["page"]["name"] == "Acme Status"
    assert summary["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert [(c["id"], c["status"]) for c in summary["components"]] == [
        ("api", "partial_outage"),
        ("dashboard", "operational"),
        ("webhooks", "partial_outage"),
    ]
    (open_incident,) = summary["incidents"]
    assert open_incident["id"] == f"firebell-incident-{incident}"
    assert [u["status"] for u in open_incident["incident_updates"]] == ["identified", "investigating"]
    assert summary["scheduled_maintenances"] == []

    listed = httpx.get(f"{server.url}/api/v2/incidents.json", timeout=10).json()["incidents"]
    assert [i["name"] for i in listed] == ["Checkout <errors>", "Slow dashboard"]
    assert listed[1]["status"] == "resolved" and listed[1]["resolved_at"]
    status = httpx.get(f"{server.url}/api/v2/status.json", timeout=10).json()
    assert status["status"]["indicator"] == "major"


def test_push_subscriptions_are_refused_without_a_vapid_key(server: FirebellServer) -> None:
    body = {"endpoint": "https://push.example/abc", "keys": {"p256dh": "BPk", "auth": "x1"}}
    response = httpx.post(f"{server.url}/status/push-subscriptions", json=body, timeout=10)
    assert response.status_code == 404
    assert server.sql("select count(*) from subscribers")[0][0] == 0


# ------------------------------------------------------------------ with a VAPID key

VAPID_KEY = "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U"


@pytest.fixture
async def push_app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncEngine]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'push.db'}")
    await migrate(engine)
    config = NoticesConfig(
        segments={
            "customers": SegmentConfig(channels=["email"]),
            "browsers": SegmentConfig(channels=["push", "statuspage"], locales=["fr", "en"]),
        }
    )
    app = FastAPI()
    app.include_router(status_page_router(engine, config, SystemClock(), vapid_public_key=VAPID_KEY))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        yield client, engine
    await engine.dispose()


async def _subscribers(engine: AsyncEngine) -> list[Any]:
    from sqlalchemy import text

    async with engine.connect() as connection:
        query = "select segment, push_endpoint, push_p256dh, push_auth, locale, email from subscribers"
        return list((await connection.execute(text(query))).all())


async def test_push_subscription_is_stored_once_in_the_first_push_segment(
    push_app: tuple[httpx.AsyncClient, AsyncEngine],
) -> None:
    client, engine = push_app
    body = {
        "endpoint": "https://push.example/send/abc",
        "expirationTime": None,
        "keys": {"p256dh": "BPk_1", "auth": "a-1"},
    }
    first = await client.post("/status/push-subscriptions", json=body)
    assert (first.status_code, first.json()) == (201, {"subscribed": True, "segment": "browsers"})
    body["keys"] = {"p256dh": "BPk_2", "auth": "a-2"}
    again = await client.post("/status/push-subscriptions", json=body)
    assert again.status_code == 200
    assert await _subscribers(engine) == [
        ("browsers", "https://push.example/send/abc", "BPk_2", "a-2", "fr", None)
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"endpoint": "http://push.example/abc", "keys": {"p256dh": "BPk", "auth": "a"}},
        {"endpoint": "https://push.example/abc", "keys": {"p256dh": "not base64!", "auth": "a"}},
        {"endpoint": "https://push.example/abc"},
        ["not", "an", "object"],
    ],
)
async def test_a_bad_push_subscription_is_refused(
    push_app: tuple[httpx.AsyncClient, AsyncEngine], body: Any
) -> None:
    client, engine = push_app
    response = await client.post("/status/push-subscriptions", json=body)
    assert response.status_code == 400
    assert await _subscribers(engine) == []


async def test_push_needs_json_content_type(push_app: tuple[httpx.AsyncClient, AsyncEngine]) -> None:
    client, _ = push_app
    response = await client.post(
        "/status/push-subscriptions",
        content=b'{"endpoint": "https://push.example/a", "keys": {"p256dh": "B", "auth": "a"}}',
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 415


async def test_page_offers_the_push_button_only_with_a_key(
    push_app: tuple[httpx.AsyncClient, AsyncEngine],
) -> None:
    client, _ = push_app
    page = (await client.get("/status")).text
    assert f'data-vapid-key="{VAPID_KEY}"' in page
    assert 'id="push" hidden' in page  # shown by the script only where push works
    assert f"<script>{SCRIPT}</script>" in page
    worker = await client.get("/status/sw.js")
    assert worker.status_code == 200 and worker.headers["content-type"].startswith("text/javascript")
    # One email segment: no choice to make, the segment rides along hidden.
    assert '<input type="hidden" name="segment" value="customers">' in page
