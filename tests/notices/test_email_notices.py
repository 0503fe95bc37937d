"""Email notices end to end against a real SMTP server: import, segments and
locales, multipart messages with one-click unsubscribe, refusals, figures."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import SystemClock
from bot.errors import IntegrationError, UserError
from bot.notices.email import EmailSender, parse_smtp_url
from bot.notices.model import Impact, NoticeDraft, NoticeStatus, Outgoing
from bot.notices.subscribers import import_csv
from bot.settings import Settings, load_settings
from bot.store.database import create_engine
from bot.store.migrate import migrate
from bot.tls import client_ssl_context
from handlers.notice_senders import build_notices, build_senders
from tests.conftest import write_toml
from tests.fakes.tls import TlsMaterial
from tests.notices.smtp_sink import SmtpSink

SEGMENTS = {
    "notices.segments.enterprise": {"channels": ["email"], "variant": "technical", "locales": ["en"]},
    "notices.segments.consumer": {"channels": ["email"], "variant": "plain", "locales": ["fr", "en"]},
}


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(refuse=["ghost@example.com"]) as server:
        yield server


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'firebell.db'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


def settings_for(tmp_path: Path, sink: SmtpSink, extra: dict[str, dict[str, Any]] | None = None) -> Settings:
    config = write_toml(tmp_path / "firebell.toml", {**SEGMENTS, **(extra or {})})
    return load_settings(
        {
            "FIREBELL_CONFIG": str(config),
            "FIREBELL_DATABASE_URL": f"sqlite:///{tmp_path / 'firebell.db'}",
            "FIREBELL_SMTP_URL": sink.url,
            "FIREBELL_EMAIL_FROM": "Acme Status <status@acme.test>",
            "FIREBELL_PUBLIC_URL": "https://status.acme.test",
        }
    )


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


async def send_and_drain(engine: AsyncEngine, settings: Settings, draft: NoticeDraft) -> int:
    async with httpx.AsyncClient() as http:
        senders = build_senders(settings, client_ssl_context(None), http, None)
        service, dispatcher = build_notices(engine, settings, SystemClock(), "test", senders)
        notice_id = await service.send(draft, created_by="U1")
        while await dispatcher.drain_once():
            pass
        await dispatcher.close()
    return notice_id


DRAFT = NoticeDraft(
    status=NoticeStatus.IDENTIFIED,
    message="Card payments fail for 12% of checkouts.\nA fix is rolling out.",
    incident_title="Checkout errors",
    impact=Impact.MAJOR,
    components=("checkout",),
)


async def test_csv_import_checks_rows_and_keeps_unsubscribes(engine: AsyncEngine, tmp_path: Path) -> None:
    now = SystemClock().now()
    csv = write_csv(
        tmp_path / "a.csv",
        [
            "Email,Locale,Components",
            "ann@example.com,fr,checkout;api",
            "not-an-address,en,",
            "bob@example.com,,",
            "eve@example.com,xx-yyy,",
        ],
    )
    report = await import_csv(engine, csv, "consumer", "en", now)
    assert report.imported == 2
    assert [line for line, _ in report.skipped] == [3, 5]
    async with engine.begin() as connection:
        await connection.execute(
            text("update subscribers set unsubscribed_at = :now where email = 'bob@example.com'"),
            {"now": now},
        )
    await import_csv(engine, csv, "consumer", "en", now)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "select email, locale, components, unsubscribed_at is not null"
                    " from subscribers order by email"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("ann@example.com", "fr", json.dumps(["checkout", "api"]), 0),
        ("bob@example.com", "en", "[]", 1),
    ]
    with pytest.raises(UserError, match="needs a header row with an `email` column"):
        await import_csv(
            engine, write_csv(tmp_path / "b.csv", ["address", "x@example.com"]), "consumer", "en", now
        )


async def test_fan_out_by_segment_and_locale_with_one_click_unsubscribe(
    engine: AsyncEngine, tmp_path: Path, sink: SmtpSink
) -> None:
    settings = settings_for(tmp_path, sink)
    now = SystemClock().now()
    await import_csv(
        engine,
        write_csv(tmp_path / "e.csv", ["email", "cto@bigcorp.example", "ghost@example.com"]),
        "enterprise",
        "en",
        now,
    )
    await import_csv(
        engine,
        write_csv(
            tmp_path / "c.csv",
            ["email,locale", "marie@example.fr,fr", "joe@example.com,en", "kim@example.com,de"],
        ),
        "consumer",
        "fr",
        now,
    )
    notice_id = await send_and_drain(engine, settings, DRAFT)

    by_rcpt = {r.rcpt_tos[0]: r.message() for r in sink.received}
    assert sorted(by_rcpt) == [
        "cto@bigcorp.example",
        "joe@example.com",
        "kim@example.com",
        "marie@example.fr",
    ]
    technical = by_rcpt["cto@bigcorp.example"]
    assert technical["Subject"] == "[Identified] Checkout errors — checkout"
    assert technical.get_content_type() == "multipart/alternative"
    plain_part = technical.get_body(("plain",))
    html_part = technical.get_body(("html",))
    assert plain_part is not None and html_part is not None
    assert "Affected: checkout" in plain_part.get_content() and "Major impact" in plain_part.get_content()
    html = html_part.get_content()
    assert "<img" not in html and "src=" not in html and "url(" not in html and "<link" not in html
    assert by_rcpt["marie@example.fr"]["Subject"] == "Checkout errors: cause identifiée"
    assert (
        by_rcpt["kim@example.com"]["Subject"] == "Checkout errors: cause identifiée"
    )  # de → the segment's first locale
    assert by_rcpt["joe@example.com"]["Subject"] == "Checkout errors: identified"
    assert "Affected" not in (by_rcpt["joe@example.com"].get_body(("plain",)) or technical).get_content()

    links = set()
    for address, message in by_rcpt.items():
        link = str(message["List-Unsubscribe"]).strip("<>")
        assert link.startswith("https://status.acme.test/unsubscribe/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert link in (message.get_body(("plain",)) or message).get_content(), address
        links.add(link)
    assert len(links) == 4  # one per recipient

    async with engine.connect() as connection:
        states = dict(
            (
                await connection.execute(
                    text("select target, state from notice_deliveries where notice_id = :n"), {"n": notice_id}
                )
            ).all()
        )
        error = await connection.scalar(
            text("select last_error from notice_deliveries where target = 'ghost@example.com'")
        )
    assert states.pop("ghost@example.com") == "failed"
    assert "550" in error and "No such user" in error
    assert set(states.values()) == {"sent"}


async def test_unsubscribed_are_never_mailed_again(
    engine: AsyncEngine, tmp_path: Path, sink: SmtpSink
) -> None:
    from bot.notices.unsubscribe import signing_key, unsubscribe, verify_token

    settings = settings_for(tmp_path, sink)
    now = SystemClock().now()
    await import_csv(
        engine,
        write_csv(tmp_path / "c.csv", ["email", "a@example.com", "b@example.com"]),
        "consumer",
        "fr",
        now,
    )
    await send_and_drain(engine, settings, DRAFT)
    message = next(r.message() for r in sink.received if r.rcpt_tos == ["a@example.com"])
    token = str(message["List-Unsubscribe"]).strip("<>").rsplit("/", 1)[1]
    key = await signing_key(engine)
    subscriber = verify_token(token, key)
    assert subscriber is not None and verify_token(token[:-2] + "xx", key) is None
    assert await unsubscribe(engine, subscriber, now)
    await send_and_drain(engine, settings, NoticeDraft(status=NoticeStatus.RESOLVED, message="Fixed."))
    second = [r.rcpt_tos[0] for r in sink.received[2:]]
    assert second == ["b@example.com"]


async def test_a_long_line_falls_back_to_quoted_printable(
    engine: AsyncEngine, tmp_path: Path, sink: SmtpSink
) -> None:
    settings = settings_for(tmp_path, sink)
    await import_csv(
        engine,
        write_csv(tmp_path / "c.csv", ["email", "a@example.com"]),
        "enterprise",
        "en",
        SystemClock().now(),
    )
    long_message = "word " * 400
    await send_and_drain(engine, settings, NoticeDraft(status=NoticeStatus.MONITORING, message=long_message))
    (received,) = sink.received
    assert b"Content-Transfer-Encoding: quoted-printable" in received.data
    body = received.message().get_body(("plain",))
    assert body is not None and long_message.strip() in " ".join(body.get_content().split())


def test_smtp_url_forms() -> None:
    from bot.errors import ConfigurationError
    from bot.notices.email import parse_smtp_url

    plain = parse_smtp_url("smtp://us%40er:p%3Ass@mail.example:2525")
    assert (plain.host, plain.port, plain.username, plain.password, plain.implicit_tls) == (
        "mail.example",
        2525,
        "us@er",
        "p:ss",
        False,
    )
    assert (
        parse_smtp_url("smtps://mail.example").port == 465
        and parse_smtp_url("smtps://mail.example").implicit_tls
    )
    assert parse_smtp_url("smtp://mail.example").port == 587
    with pytest.raises(ConfigurationError):
        parse_smtp_url("http://mail.example")


async def _send_one(sink: SmtpSink, url: str, tls: TlsMaterial) -> None:
    sender = EmailSender(parse_smtp_url(url), "status@acme.test", tls.client_context())
    committed: list[int] = []

    async def commit() -> None:
        committed.append(1)

    message = Outgoing(
        1, 1, "email", "everyone", "en", "a@example.com", "Subject", "Body\n", None, "https://x/u/1.s"
    )
    try:
        await sender.send(message, commit)
    finally:
        await sender.close()
    assert committed == [1]


async def test_starttls_with_a_login(tls: TlsMaterial) -> None:
    with SmtpSink(tls=tls.server_context, login=("notices", "s3cret pw")) as sink:
        await _send_one(sink, f"smtp://notices:s3cret%20pw@127.0.0.1:{sink.port}", tls)
        assert [r.rcpt_tos for r in sink.received] == [["a@example.com"]]
        with pytest.raises(IntegrationError, match="refused the login") as refused:
            await _send_one(sink, f"smtp://notices:wrong@127.0.0.1:{sink.port}", tls)
        assert "wrong" not in str(refused.value)


async def test_implicit_tls(tls: TlsMaterial) -> None:
    with SmtpSink(implicit_tls=tls.server_context) as sink:
        assert sink.url.startswith("smtps://")
        await _send_one(sink, sink.url, tls)
        assert len(sink.received) == 1


def test_templates_can_be_overridden_per_segment_channel_and_locale(tmp_path: Path) -> None:
    from bot.notices.config import NoticesConfig
    from bot.notices.render import NoticeRenderer

    (tmp_path / "consumer").mkdir()
    (tmp_path / "consumer" / "email.fr.subject.j2").write_text("Info service : {{ title }}")
    (tmp_path / "consumer" / "push.text.j2").write_text("{{ message|upper }}")
    config = NoticesConfig.model_validate(
        {
            "templates_dir": str(tmp_path),
            "segments": {
                "consumer": {"channels": ["email", "push"], "variant": "plain", "locales": ["fr", "en"]}
            },
        }
    )
    bodies = {
        (b.channel, b.locale): b
        for b in NoticeRenderer(config).render_all(
            NoticeDraft(status=NoticeStatus.MONITORING, message="ça va", incident_title="Paiements")
        )
    }
    assert bodies[("email", "fr")].subject == "Info service : Paiements"
    assert bodies[("email", "en")].subject == "Paiements: monitoring"  # shipped template
    assert bodies[("push", "fr")].text == "ÇA VA" and bodies[("push", "en")].text == "ÇA VA"


async def test_the_rate_limit_spaces_messages() -> None:
    from bot.notices.email import _RateLimit

    slept: list[float] = []
    limit = _RateLimit(10)
    for _ in range(3):
        await limit.wait()
        slept.append(limit._next)  # the schedule, not the clock, is what is checked
    assert [round(b - a, 3) for a, b in itertools.pairwise(slept)] == [0.1, 0.1]
