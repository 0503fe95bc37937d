"""Email fan-out benchmark: ``firebell notice send`` against Postfix's ``smtp-source``.

Run it with ``uv run python benchmarks/fanout.py`` (``--help`` lists the knobs).
It is a measurement, not a test: it always exits 0 unless it could not run,
and prints PASS/FAIL against each target. ``smtp-source`` comes from Debian's
``postfix`` package (not installed by ``.ci/install-deps``; see
``benchmarks/README.md``).

What it does, in one run:

1. Writes a firebell.toml with two email segments (``enterprise``: technical
   variant, ``en``; ``consumer``: plain variant, ``fr`` and ``en``) and imports
   ``--subscribers`` addresses (30 % enterprise, 70 % consumer, the consumers
   half ``fr`` half ``en``) with ``firebell subscribers import`` into a fresh
   SQLite database. This is set-up, not timed.
2. Starts a minimal SMTP sink (aiosmtpd on uvloop, a handler that only counts
   messages and bytes and discards them) as a separate process pinned to one
   core; everything measured runs pinned to the other core.
3. Renders the notice in this process with firebell's own renderer and
   message template to learn the average size of one recipient's message,
   calibrates ``smtp-source``'s ``-l`` so its messages are that size too (the
   sink measures both), and times ``smtp-source -d -s CONNECTIONS -m N -l
   SIZE`` from its start to its exit.
4. Times ``firebell notice send`` (which waits for the fan-out) from the
   process start to the sink's last message: start-up, rendering, writing the
   outbox (one row per recipient), claiming, per-recipient substitution,
   SMTP and the delivery marks are all inside. Peak RSS is the process's
   ``ru_maxrss`` (the kernel's VmHWM at exit).
5. Checks that the sink counted exactly N messages from each and that the
   outbox shows N sent, and prints both rates, their ratio and the targets:
   firebell ≥ 50 % of smtp-source's rate, peak RSS ≤ 250 MB.

``--sink PORT CONTROL_PORT`` runs only the sink (the benchmark starts itself
that way as a child process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for ``benchmarks.ingest`` and ``bot`` when run as a script

from benchmarks.ingest import (  # noqa: E402
    Child,
    _cpu_plan,
    _loadavg,
    _revision,
    cores_busy_seconds,
    firebell_command,
    free_port,
    run_until_done,
)
from bot.notices.config import EmailConfig  # noqa: E402 - after the path setup

# Targets from the issue.
TARGET_RATE_RATIO = 0.50
TARGET_PEAK_RSS_MB = 250.0

EMAIL_FROM = "Acme Status <status@acme.test>"
PUBLIC_URL = "https://status.acme.test"
SEGMENTS: dict[str, dict[str, Any]] = {
    "enterprise": {"channels": ["email"], "variant": "technical", "locales": ["en"]},
    "consumer": {"channels": ["email"], "variant": "plain", "locales": ["fr", "en"]},
}
ENTERPRISE_SHARE = 0.30
STATUS = "identified"
TITLE_MESSAGE = (
    "Card payments fail for about 12% of checkouts in the EU region since 14:05 UTC.\n"
    "The cause is a certificate rotation at our payment provider; a fix is rolling out and "
    "we expect error rates to be back to normal within the hour. Retrying a failed payment "
    "is safe: no card is charged twice."
)


# --------------------------------------------------------------------------- the sink


def serve_sink(port: int, control_port: int) -> None:
    """aiosmtpd on uvloop; counts messages and bytes, keeps nothing.

    The control port answers one line per connection: ``stats`` (JSON with
    ``count``, ``bytes``, ``first`` and ``last``, the ``time.monotonic()`` of
    the first and last message) or ``reset``.
    """
    import uvloop
    from aiosmtpd.smtp import SMTP

    logging.getLogger("mail.log").setLevel(logging.ERROR)

    class Counting:
        def __init__(self) -> None:
            self.reset()

        def reset(self) -> None:
            self.count = 0
            self.bytes = 0
            self.first: float | None = None
            self.last: float | None = None

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.monotonic()
            if self.first is None:
                self.first = now
            self.last = now
            self.count += 1
            self.bytes += len(envelope.original_content or b"")
            return "250 OK"

    handler = Counting()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = (await reader.readline()).strip()
        if command == b"reset":
            handler.reset()
        stats = {"count": handler.count, "bytes": handler.bytes, "first": handler.first, "last": handler.last}
        writer.write(json.dumps(stats).encode() + b"\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(
            lambda: SMTP(handler, hostname="sink.bench", ident="bench sink", decode_data=False),
            "127.0.0.1",
            port,
        )
        await asyncio.start_server(control, "127.0.0.1", control_port)
        await asyncio.Event().wait()

    uvloop.run(main())


def sink_call(control_port: int, command: str) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", control_port), timeout=10) as sock:
        sock.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    result: dict[str, Any] = json.loads(data)
    return result


# --------------------------------------------------------------------------- results


@dataclass
class Phase:
    name: str
    messages: int = 0
    bytes: int = 0
    started: float = 0.0
    first: float | None = None
    last: float | None = None
    ended: float = 0.0
    cpu: float | None = None
    sink_cpu: float | None = None
    core_busy: float | None = None
    peak_rss_kb: int | None = None
    exit_code: int | None = None
    outbox: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def elapsed(self) -> float:
        """From the process start to the sink's last message (or the exit, without one)."""
        end = self.last if self.last is not None else self.ended
        return max(1e-9, end - self.started)

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed

    @property
    def average_size(self) -> float:
        return self.bytes / self.messages if self.messages else 0.0


# --------------------------------------------------------------------------- the benchmark


def _rusage_wait(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, float, int]:
    """Wait for a child, watching its VmHWM; (exit code, CPU seconds, peak RSS kB)."""
    deadline = time.monotonic() + timeout
    peak = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            process.returncode = code
            return code, usage.ru_utime + usage.ru_stime, max(peak, usage.ru_maxrss)
        with contextlib.suppress(OSError):
            match = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{process.pid}/status").read_text(), re.M)
            if match:
                peak = max(peak, int(match.group(1)))
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            raise RuntimeError(f"gave up after {timeout:g} s")
        time.sleep(0.02)


def _process_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="firebell-fanout-"))
        self.children: list[Child] = []
        # One core for what is measured (smtp-source, firebell), the other for the sink.
        self.measured_cpus, self.sink_cpus = _cpu_plan()
        self.database = self.tmp / "firebell.db"
        self.sink_port = free_port()
        self.control_port = free_port()
        self.env: dict[str, str] = {}
        self.sink: Child | None = None

    def close(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                child.stop()
        if self.args.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    # -- set-up ------------------------------------------------------------------

    def configure(self) -> None:
        from tests.conftest import write_toml

        tables: dict[str, dict[str, Any]] = {f"notices.segments.{n}": s for n, s in SEGMENTS.items()}
        tables["notices.email"] = {"connections": self.args.connections}
        config = write_toml(self.tmp / "firebell.toml", tables)
        env = {
            **os.environ,
            "FIREBELL_CONFIG": str(config),
            "FIREBELL_DATABASE_URL": f"sqlite:///{self.database}",
            "FIREBELL_SMTP_URL": f"smtp://127.0.0.1:{self.sink_port}",
            "FIREBELL_EMAIL_FROM": EMAIL_FROM,
            "FIREBELL_PUBLIC_URL": PUBLIC_URL,
            "FIREBELL_LOG_LEVEL": "WARNING",
        }
        for unset in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "FIREBELL_LOG_JSON", "SSL_CERT_FILE"):
            env.pop(unset, None)
        self.env = env

    def segment_sizes(self) -> dict[str, int]:
        enterprise = round(self.args.subscribers * ENTERPRISE_SHARE)
        return {"enterprise": enterprise, "consumer": self.args.subscribers - enterprise}

    def import_subscribers(self) -> None:
        for segment, count in self.segment_sizes().items():
            csv = self.tmp / f"{segment}.csv"
            with csv.open("w", encoding="utf-8") as out:
                out.write("email,locale\n")
                for n in range(count):
                    locale = "en" if segment == "enterprise" or n % 2 else "fr"
                    out.write(f"{segment}.{n:06d}@example.com,{locale}\n")
            done = subprocess.run(
                [*firebell_command(), "subscribers", "import", str(csv), "--segment", segment],
                env=self.env,
                cwd=self.tmp,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                raise RuntimeError(f"import failed:\n{done.stdout}\n{done.stderr}")
            self.say(done.stdout.strip())

    def start_sink(self) -> None:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--sink",
            str(self.sink_port),
            str(self.control_port),
        ]
        sink = Child("sink", command, dict(os.environ), ROOT, self.tmp / "sink.log")
        self.children.append(sink)
        sink.start(self.sink_cpus)
        sink.wait_listening(self.control_port)
        sink.wait_listening(self.sink_port)
        self.sink = sink

    def firebell_message_size(self) -> float:
        """The average size of one recipient's message, as firebell builds it."""
        from bot.notices.email import MessageTemplate
        from bot.notices.model import NoticeDraft, NoticeStatus
        from bot.notices.render import NoticeRenderer
        from bot.notices.unsubscribe import unsubscribe_url
        from bot.settings import load_settings

        settings = load_settings(self.env)
        renderer = NoticeRenderer(settings.config.notices, status_url=f"{PUBLIC_URL}/status")
        bodies = renderer.render_all(NoticeDraft(status=NoticeStatus(STATUS), message=TITLE_MESSAGE))
        sizes = self.segment_sizes()
        total = 0.0
        for body in bodies:
            template = MessageTemplate(EMAIL_FROM, body.subject, body.text, body.html, None)
            data = template.for_recipient(
                f"{body.segment}.012345@example.com",
                unsubscribe_url(PUBLIC_URL, 12345, b"k" * 32),
                "notice-1.12345@acme.test",
            )
            # What the sink counts: without the dot-stuffing, the same CRLF lines.
            size = len(data.replace(b"\r\n..", b"\r\n."))
            share = sizes[body.segment] / self.args.subscribers
            if body.segment == "consumer":
                share /= 2  # half fr, half en
            total += size * share
        return total

    # -- phases ------------------------------------------------------------------

    def measure(self, name: str, command: list[str], env: dict[str, str] | None) -> Phase:
        assert self.sink is not None
        sink_call(self.control_port, "reset")
        phase = Phase(name)
        self.wait_quiet(name)
        sink_cpu = _process_cpu(self.sink.pid)
        busy = cores_busy_seconds(self.measured_cpus)
        child = Child(name, command, env or dict(os.environ), self.tmp, self.tmp / f"{name}.log")
        self.children.append(child)
        phase.started = time.monotonic()
        child.start(self.measured_cpus)
        profiler = self.start_profiler(child) if name == "firebell" else None
        assert child.process is not None
        try:
            phase.exit_code, phase.cpu, phase.peak_rss_kb = _rusage_wait(child.process, self.args.timeout)
        finally:
            phase.ended = time.monotonic()
            self.stop_profiler(profiler)
        busy_after = cores_busy_seconds(self.measured_cpus)
        sink_cpu_after = _process_cpu(self.sink.pid)
        if busy is not None and busy_after is not None and phase.cpu is not None:
            phase.core_busy = max(0.0, busy_after - busy - phase.cpu)  # other processes on the core
        if sink_cpu is not None and sink_cpu_after is not None:
            phase.sink_cpu = sink_cpu_after - sink_cpu
        # The sink answers 250 before the client reads it: give the last one a moment.
        time.sleep(0.2)
        stats = sink_call(self.control_port, "stats")
        phase.messages, phase.bytes = stats["count"], stats["bytes"]
        phase.first, phase.last = stats["first"], stats["last"]
        if phase.exit_code != 0:
            phase.note = f"exit {phase.exit_code}: {child.tail(5)}"
        return phase

    def smtp_source(self, count: int, size: float) -> Phase:
        tool = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
        if not Path(tool).exists():
            raise SystemExit(
                "smtp-source not found: DEBIAN_FRONTEND=noninteractive apt-get install -y "
                "--no-install-recommends postfix (then stop the postfix service)"
            )

        def command(messages: int, length: int, sessions: int) -> list[str]:
            return [
                tool,
                "-d",
                "-s",
                str(sessions),
                "-m",
                str(messages),
                "-l",
                str(length),
                "-f",
                "status@acme.test",
                "-t",
                "someone@example.com",
                "-M",
                "bench.acme.test",
                f"127.0.0.1:{self.sink_port}",
            ]

        # Calibrate -l: the sink's byte count for two payload lengths (a line
        # of headers, and the payload split into lines, on top of -l).
        sizes = []
        for length in (10, 2010):
            sink_call(self.control_port, "reset")
            subprocess.run(command(1, length, 1), check=True, timeout=30, capture_output=True)
            time.sleep(0.1)
            sizes.append(sink_call(self.control_port, "stats")["bytes"])
        per_byte = (sizes[1] - sizes[0]) / 2000
        length = max(1, 10 + round((size - sizes[0]) / per_byte))
        self.say(f"smtp-source: -l {length} for {size:,.0f}-byte messages")
        return self.measure("smtp-source", command(count, length, self.args.connections), None)

    def firebell(self) -> Phase:
        base = shlex.split(self.args.firebell_command) if self.args.firebell_command else firebell_command()
        command = [*base, "notice", "send", "--status", STATUS, "--message", TITLE_MESSAGE]
        phase = self.measure("firebell", command, self.env)
        with sqlite3.connect(self.database) as connection:
            phase.outbox = dict(
                connection.execute("select state, count(*) from notice_deliveries group by state").fetchall()
            )
        return phase

    def wait_quiet(self, what: str) -> None:
        if self.args.wait_quiet <= 0 or not self.measured_cpus:
            return
        deadline = time.monotonic() + self.args.wait_quiet
        while time.monotonic() < deadline:
            before = cores_busy_seconds(self.measured_cpus)
            time.sleep(1.0)
            after = cores_busy_seconds(self.measured_cpus)
            if before is None or after is None or after - before < 0.1:
                return
        self.say(f"the machine is still busy; measuring {what} anyway")

    def start_profiler(self, child: Child) -> subprocess.Popen[bytes] | None:
        if not self.args.py_spy:
            return None
        py_spy = shutil.which("py-spy")
        if py_spy is None:
            self.say("py-spy not found: uv pip install py-spy, or uv run --with py-spy …")
            return None
        out = Path(self.args.py_spy)
        fmt = {".txt": "raw", ".json": "speedscope"}.get(out.suffix, "flamegraph")
        command = [py_spy, "record", "--pid", str(child.pid), "--output", str(out), "--format", fmt]
        command += ["--rate", "200", "--nonblocking"]
        if self.args.py_spy_gil:
            command.append("--gil")
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_profiler(self, profiler: subprocess.Popen[bytes] | None) -> None:
        if profiler is None:
            return
        try:
            profiler.wait(timeout=30)  # py-spy stops when its target exits
        except subprocess.TimeoutExpired:
            profiler.terminate()
            profiler.wait(timeout=10)
        self.say(f"py-spy profile: {self.args.py_spy}")

    def run(self) -> None:
        args = self.args
        self.say(
            f"{args.subscribers:,} subscribers, {args.connections} SMTP connections, "
            f"measured on cpus {sorted(self.measured_cpus or [])}, sink on {sorted(self.sink_cpus or [])}"
        )
        self.configure()
        self.import_subscribers()
        self.start_sink()
        size = self.firebell_message_size()
        self.say("smtp-source …")
        source = self.smtp_source(args.subscribers, size)
        self.say(f"smtp-source: {source.messages:,} messages in {source.elapsed:.2f} s")
        self.say("firebell notice send …")
        fire = self.firebell()
        self.say(f"firebell: {fire.messages:,} messages in {fire.elapsed:.2f} s")
        report(args, source, fire)


# --------------------------------------------------------------------------- report


def _verdict(ok: bool) -> str:
    return "[green]PASS[/green]" if ok else "[bold red]FAIL[/bold red]"


def _opt(value: float | None, fmt: str = ",.2f") -> str:
    return "?" if value is None else format(value, fmt)


def report(args: argparse.Namespace, source: Phase, fire: Phase) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 110))
    n = args.subscribers
    table = Table(
        title=f"Email fan-out: {n:,} recipients, {args.connections} SMTP sessions, one sink "
        f"({_revision()}, load {_loadavg()})"
    )
    for column in (
        "",
        "messages",
        "avg size",
        "wall s",
        "messages/s",
        "CPU s",
        "sink CPU s",
        "others on core",
    ):
        table.add_column(column, justify="left" if not column else "right")
    for phase, what in ((source, "smtp-source -d"), (fire, "firebell notice send")):
        table.add_row(
            what,
            f"{phase.messages:,}",
            f"{phase.average_size:,.0f} B",
            f"{phase.elapsed:.2f}",
            f"{phase.rate:,.0f}",
            _opt(phase.cpu),
            _opt(phase.sink_cpu),
            _opt(phase.core_busy),
        )
    console.print(table)

    detail = Table(title="firebell notice send")
    detail.add_column("")
    detail.add_column("value", justify="right")
    if fire.first is not None and fire.last is not None:
        detail.add_row(
            "start → first message (start-up, render, outbox write)", f"{fire.first - fire.started:.2f} s"
        )
        detail.add_row("first → last message", f"{fire.last - fire.first:.2f} s")
        detail.add_row(
            "rate between first and last message",
            f"{(fire.messages - 1) / max(1e-9, fire.last - fire.first):,.0f}/s",
        )
        detail.add_row("last message → exit", f"{fire.ended - fire.last:.2f} s")
    detail.add_row("CPU per message", f"{1e6 * (fire.cpu or 0) / max(1, fire.messages):,.0f} µs")
    detail.add_row("peak RSS (VmHWM)", f"{(fire.peak_rss_kb or 0) / 1024:,.0f} MB")
    detail.add_row("outbox after", ", ".join(f"{s} {c:,}" for s, c in sorted(fire.outbox.items())) or "?")
    if fire.note:
        detail.add_row("note", fire.note)
    if source.note:
        detail.add_row("smtp-source", source.note)
    console.print(detail)

    ratio = fire.rate / source.rate if source.rate else 0.0
    peak_mb = (fire.peak_rss_kb or 0) / 1024
    verdicts = Table(title="Targets")
    for column in ("target", "measured", ""):
        verdicts.add_column(column)
    checks = [
        (f"rate ≥ {TARGET_RATE_RATIO:.0%} of smtp-source's", f"{ratio:.1%}", ratio >= TARGET_RATE_RATIO),
        (f"peak RSS ≤ {TARGET_PEAK_RSS_MB:.0f} MB", f"{peak_mb:,.0f} MB", peak_mb <= TARGET_PEAK_RSS_MB),
        (f"sink counted {n:,} from smtp-source", f"{source.messages:,}", source.messages == n),
        (f"sink counted {n:,} from firebell", f"{fire.messages:,}", fire.messages == n),
        (f"outbox: {n:,} sent", f"{fire.outbox.get('sent', 0):,}", fire.outbox == {"sent": n}),
    ]
    for what, measured, ok in checks:
        verdicts.add_row(what, measured, _verdict(ok))
    console.print(verdicts)
    console.print(
        f"firebell {fire.rate:,.0f} messages/s, smtp-source {source.rate:,.0f} messages/s, ratio {ratio:.2f}"
    )
    for what, measured, ok in checks:
        if not ok:
            console.print(f"FAIL {what}: {measured}")


# --------------------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--sink", type=int, nargs=2, metavar=("PORT", "CONTROL_PORT"), help="only run the sink"
    )
    parser.add_argument("--subscribers", type=int, default=100_000, help="recipients (default 100000)")
    parser.add_argument(
        "--connections",
        type=int,
        default=EmailConfig().connections,
        help="firebell's SMTP connections = smtp-source sessions (firebell's default)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="give up on a phase after SECONDS (900)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each phase, wait up to SECONDS for the measured core to be idle (0)",
    )
    parser.add_argument("--py-spy", metavar="FILE", help="profile firebell with py-spy into FILE")
    parser.add_argument(
        "--py-spy-gil", action="store_true", help="with --py-spy: only the thread holding the GIL"
    )
    parser.add_argument(
        "--firebell-command",
        metavar="CMD",
        help="run CMD instead of `firebell` for the timed fan-out (it gets `notice send …`), e.g. a wrapper",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, logs)")
    args = parser.parse_args(argv)
    if args.subscribers < 2:
        parser.error("--subscribers must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sink is not None:
        serve_sink(*args.sink)
        return 0
    return run_until_done(Bench(args))


if __name__ == "__main__":
    sys.exit(main())
