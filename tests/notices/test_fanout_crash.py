"""kill -9 in the middle of an email fan-out, then resume: nobody is mailed
twice, and nobody is left out but a message already past its point of no
return when the process died.

5,000 subscribers are imported with the CLI, ``firebell notice send`` runs as
a child process against a real SMTP server (aiosmtpd, in this process) and is
killed with SIGKILL once the server has accepted some of the messages; then
``firebell serve`` on the same database finishes the fan-out. The server must
have accepted exactly one message for each address, and the outbox must show
every delivery sent.

The killed process's claims are not waited out (their lease is five
minutes): ``firebell serve`` sees at start that the process holding them is
gone and takes its deliveries over at once.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import write_toml
from tests.harness import FirebellProcess
from tests.notices.smtp_sink import free_port

SUBSCRIBERS = 5_000
SEGMENTS = {"enterprise": 2_000, "consumer": 3_000}
KILL_AFTER = 1_234
"""Messages the server has accepted when ``notice send`` is killed."""
KILL_BEFORE = 4_000
"""Still fewer than this at the kill, or the crash was not in the middle."""

_headers = email.parser.BytesHeaderParser(policy=email.policy.SMTP)


@dataclass
class CountingHandler:
    """Counts every accepted message with its envelope recipients and ``To``."""

    messages: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        to = str(_headers.parsebytes(envelope.original_content or envelope.content)["To"])
        with self.lock:
            self.messages.append((tuple(envelope.rcpt_tos), to))
        return "250 Message accepted for delivery"

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.messages)


@pytest.fixture
def smtp() -> Iterator[tuple[CountingHandler, int]]:
    handler = CountingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="localhost")
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def address(segment: str, n: int) -> str:
    return f"{segment}-{n:05d}@example.com"


def firebell(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("firebell")), *args]


def states(database: Path) -> Counter[str]:
    with sqlite3.connect(database, timeout=30) as connection:
        return Counter(
            dict(
                connection.execute("select state, count(*) from notice_deliveries group by state").fetchall()
            )
        )


def wait_for(predicate: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {what()}")
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_mid_fan_out_then_resume_mails_everyone_exactly_once(
    smtp: tuple[CountingHandler, int], tmp_path: Path
) -> None:
    sink, port = smtp
    database = tmp_path / "firebell.db"
    config = write_toml(
        tmp_path / "firebell.toml",
        {
            "notices.segments.enterprise": {"channels": ["email"], "variant": "technical", "locales": ["en"]},
            "notices.segments.consumer": {"channels": ["email"], "variant": "plain", "locales": ["fr", "en"]},
            "notices.email": {"connections": 4},
        },
    )
    env = {
        "FIREBELL_CONFIG": str(config),
        "FIREBELL_DATABASE_URL": f"sqlite:///{database}",
        "FIREBELL_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "FIREBELL_EMAIL_FROM": "Acme Status <status@acme.test>",
        "FIREBELL_PUBLIC_URL": "https://status.acme.test",
    }
    child_env = {**os.environ, **env}
    expected: set[str] = set()
    for segment, count in SEGMENTS.items():
        rows = ["email,locale"]
        for n in range(count):
            rows.append(f"{address(segment, n)},{'fr' if n % 2 else 'en'}")
            expected.add(address(segment, n))
        csv = tmp_path / f"{segment}.csv"
        csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
        subprocess.run(
            firebell("subscribers", "import", str(csv), "--segment", segment),
            env=child_env,
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=60,
        )
    assert len(expected) == SUBSCRIBERS

    log_file = tmp_path / "notice-send.log"
    with log_file.open("wb") as log:
        sending = subprocess.Popen(
            firebell(
                "notice",
                "send",
                "--status",
                "identified",
                "--message",
                "Card payments fail for 12% of checkouts.\nA fix is rolling out.",
            ),
            env=child_env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while sink.count < KILL_AFTER:
            assert sending.poll() is None, f"notice send ended early:\n{log_file.read_text()}"
            assert time.monotonic() < deadline, f"no fan-out:\n{log_file.read_text()}"
            time.sleep(0.002)
        sending.send_signal(signal.SIGKILL)
        sending.wait(timeout=10)
    finally:
        if sending.poll() is None:
            sending.kill()
            sending.wait(timeout=10)
    at_kill = sink.count
    assert at_kill < KILL_BEFORE, f"the fan-out was nearly over when it was killed ({at_kill})"
    before = states(database)
    assert sum(before.values()) == SUBSCRIBERS
    assert before["pending"] > 0, before  # the kill left work behind
    with sqlite3.connect(database, timeout=30) as connection:
        in_flight = {
            target
            for (target,) in connection.execute(
                "select target from notice_deliveries where state = 'committed'"
            )
        }
    # At most one message per SMTP connection is past its point of no return.
    assert len(in_flight) <= 4, in_flight

    server = FirebellProcess(env, cwd=tmp_path, log_file=tmp_path / "serve.log").start()
    try:
        wait_for(
            lambda: set(states(database)) <= {"sent", "failed", "dead"},
            timeout=60,
            what=lambda: f"every delivery has an outcome ({dict(states(database))}):\n{server.log()[-3000:]}",
        )
    finally:
        server.stop()

    after = states(database)
    received = list(sink.messages)
    by_address = Counter(rcpt for rcpts, _ in received for rcpt in rcpts)
    twice = sorted(a for a, n in by_address.items() if n > 1)
    missing = sorted(expected - by_address.keys())
    context = f"killed at {at_kill} received, outbox then {dict(before)}, now {dict(after)}"
    assert not twice, f"mailed more than once: {twice[:10]} ({len(twice)}); {context}"
    # Everything short of its final "." at the kill is sent again after it.
    # A message past that point counts as sent: if its last bytes were still
    # on their way when the process died (a killed TCP connection is reset),
    # the server may have dropped it. No protocol closes that window; it is
    # at most one message per connection, never a duplicate.
    assert set(missing) <= in_flight, f"lost outside the point of no return: {missing}; {context}"
    assert len(received) == SUBSCRIBERS - len(missing), context
    assert by_address.keys() == expected - set(missing)
    assert all(rcpts == (to,) for rcpts, to in received)  # one recipient each, the one in To
    assert after == Counter({"sent": SUBSCRIBERS}), context
