"""Webhook intake benchmark: firebell against a bare FastAPI route, side by side.

Run it with ``uv run python benchmarks/ingest.py`` (``--help`` lists the knobs).
It is a measurement, not a test: it always exits 0 unless it could not run,
and prints PASS/FAIL against each target.

What it does, in one run:

1. Builds a reproducible workload (``--seed``): signed PagerDuty v3 deliveries
   for ``--incidents`` incidents, each incident's ``incident.triggered`` first,
   then a mix of acknowledged / annotated / priority_updated / reassigned /
   escalated events, interleaved across incidents; ``--redeliveries`` of them
   repeat an earlier delivery byte for byte (same ``X-Webhook-Id``). All
   requests are built and signed before any timing starts.
2. Starts the local fake Slack and PagerDuty servers (``tests.fakes``, in this
   process) and, as separate processes pinned to one core (``taskset``-style
   affinity), first a bare FastAPI route on uvicorn (uvloop + httptools, the
   same stack ``firebell serve`` uses) that only reads the body and answers
   202, then ``firebell serve`` on SQLite. Each gets the same request sequence
   from ``--senders`` concurrent keep-alive connections driven by a raw
   HTTP/1.1 client on the other core, so the senders are not the bottleneck.
3. After firebell's load: the time until every incident has its channel and
   card at the fake Slack, the number of ``conversations.create`` calls, how
   long firebell takes to work off its backlog, and its peak RSS (VmHWM).
4. A latency phase with a fresh firebell and database: the fake Slack adds
   ``--slack-latency`` seconds to every answer, triggered deliveries are sent
   one at a time, and the time from each 202 to the card's
   ``chat.postMessage`` arriving at the fake is reported in Slack round trips.

``--bare-server PORT`` runs only the bare route (the benchmark starts itself
that way as a child process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

# Module level, not inside serve_bare: FastAPI resolves the route's (string)
# annotations in this module's globals.
from fastapi import FastAPI, Request, Response

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for ``tests.fakes`` and ``tests.samples`` when run as a script

# Targets from the issue.
TARGET_THROUGHPUT_RATIO = 0.50
TARGET_P99_MS = 50.0
TARGET_PEAK_RSS_MB = 150.0
TARGET_CARD_ROUND_TRIPS = 2.5

PD_SECRET = "bench-pagerduty-secret"
PD_FROM = "firebell-bot@acme.test"
WEBHOOK_PATH = "/webhooks/pagerduty"
SERVICES = ("checkout", "search", "payments", "identity", "catalog", "shipping", "ledger", "notifications")
PEOPLE = ("Earline Greenholt", "Hank Marvin", "Ada Byron", "Grace Brewster", "Linus Tove", "Ida Rhodes")
# Later events per incident, by weight: notes are the most common traffic.
LATER_EVENTS = (
    ("incident.annotated", 40),
    ("incident.acknowledged", 15),
    ("incident.priority_updated", 15),
    ("incident.reassigned", 15),
    ("incident.escalated", 15),
)
BASE_TIME = datetime(2024, 5, 20, 14, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- the bare route


def serve_bare(port: int) -> None:
    """A FastAPI route that only reads the body and answers 202, on uvicorn."""
    import uvicorn

    app = FastAPI()

    @app.post("/webhooks/{source}", status_code=202)
    async def webhook(source: str, request: Request) -> Response:
        await request.body()
        return Response(status_code=202)

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        log_level="warning",
        access_log=False,
    )


# --------------------------------------------------------------------------- the workload


def _on_call_email(service: str) -> str:
    return f"oncall-{service}@acme.test"


def _policy(service: str) -> str:
    return f"PEP{service[:4].upper()}"


@dataclass(frozen=True)
class Delivery:
    """One HTTP request, ready to write to a socket."""

    raw: bytes
    incident: int
    event_type: str
    redelivery: bool


def _request_bytes(body: bytes, webhook_id: str) -> bytes:
    from tests.samples import pagerduty_signature

    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "User-Agent: PagerDuty-Webhook/V3.0\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-PagerDuty-Signature: {pagerduty_signature(body, PD_SECRET)}\r\n"
        f"X-Webhook-Id: {webhook_id}\r\n"
        "X-Webhook-Subscription: PBENCHSUB\r\n"
        "\r\n"
    )
    return head.encode() + body


def _incident_event(rng: random.Random, incident: int, seq: int, event_type: str) -> dict[str, Any]:
    from tests.samples import pagerduty_event

    service = SERVICES[incident % len(SERVICES)]
    occurred = BASE_TIME + timedelta(seconds=incident * 3 + seq * 11, milliseconds=seq)
    common: dict[str, Any] = {
        "incident_id": f"PB{incident:05d}",
        "title": f"{service.capitalize()} API error rate above 5% (bench {incident + 1})",
        "service": service,
        "escalation_policy_id": _policy(service),
        "number": 10_000 + incident,
        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%S.") + f"{occurred.microsecond // 1000:03d}Z",
        "agent": rng.choice(PEOPLE),
        "teams": (service.capitalize(),),
    }
    if event_type == "incident.triggered":
        common["agent"] = None  # PagerDuty itself opened it
        return pagerduty_event(event_type, priority=("P1", "P2", "P3")[incident % 3], **common)
    if event_type == "incident.annotated":
        note = f"Update {seq}: {rng.choice(('still investigating', 'rolled back', 'scaling out'))}."
        return pagerduty_event(event_type, note=note, **common)
    if event_type == "incident.priority_updated":
        return pagerduty_event(event_type, priority=rng.choice(("P1", "P2", "P3", "P4")), **common)
    if event_type in ("incident.reassigned", "incident.escalated"):
        return pagerduty_event(event_type, assignees=(rng.choice(PEOPLE),), **common)
    return pagerduty_event(event_type, **common)


def build_workload(seed: int, incidents: int, deliveries: int, redelivery_share: float) -> list[Delivery]:
    """Signed requests in sending order: every incident's triggered event first,
    the rest interleaved across incidents, redeliveries a while after their original."""
    rng = random.Random(seed)
    redeliveries = round(deliveries * redelivery_share)
    unique = deliveries - redeliveries
    if unique < incidents:
        raise SystemExit(
            f"{deliveries} deliveries leave fewer than one event for each of {incidents} incidents"
        )
    per_incident = [unique // incidents + (1 if i < unique % incidents else 0) for i in range(incidents)]
    # Which incident each slot in the stream belongs to; the n-th slot of an
    # incident carries its n-th event, so its triggered event comes first.
    slots = [i for i, count in enumerate(per_incident) for _ in range(count)]
    rng.shuffle(slots)
    kinds = [kind for kind, _ in LATER_EVENTS]
    weights = [weight for _, weight in LATER_EVENTS]
    seen = [0] * incidents
    originals: list[Delivery] = []
    for incident in slots:
        seq = seen[incident]
        seen[incident] += 1
        event_type = "incident.triggered" if seq == 0 else rng.choices(kinds, weights)[0]
        body = json.dumps(
            _incident_event(rng, incident, seq, event_type), separators=(",", ":"), ensure_ascii=False
        ).encode()
        webhook_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        originals.append(Delivery(_request_bytes(body, webhook_id), incident, event_type, False))
    # A redelivery is PagerDuty retrying: the same bytes, some way behind.
    keyed: list[tuple[float, Delivery]] = [(float(i), d) for i, d in enumerate(originals)]
    for index in rng.sample(range(unique), redeliveries):
        original = originals[index]
        again = Delivery(original.raw, original.incident, original.event_type, True)
        keyed.append((index + rng.uniform(1, 2000), again))
    keyed.sort(key=lambda pair: pair[0])
    return [d for _, d in keyed]


# --------------------------------------------------------------------------- child processes


def _cpu_plan() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, load-generator cores): one core for the server, the rest for us."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


class Child:
    """A server process of the benchmark, pinned to ``cpus``, in its own session."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.cwd = cwd
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, cpus: set[int] | None) -> None:
        command = list(self.command)
        taskset = shutil.which("taskset")
        if cpus is not None and taskset is not None:
            command = [taskset, "-c", ",".join(map(str, sorted(cpus))), *command]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
            )
        if cpus is not None and taskset is None:
            # Popen returns after exec; the interpreter starts no threads this early.
            os.sched_setaffinity(self.process.pid, cpus)

    def wait_listening(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not listen on {port} within {timeout:g} s:\n{self.tail()}"
                )
            time.sleep(0.05)

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def status_kb(self, field_name: str) -> int | None:
        """A ``kB`` figure from ``/proc/<pid>/status`` (VmHWM, VmRSS), while it runs."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
        return int(match.group(1)) if match else None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time so far (all threads)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def firebell_command() -> list[str]:
    script = Path(sys.executable).with_name("firebell")
    if script.exists():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from handlers.cli import main; sys.argv[0] = 'firebell'; main()",
    ]


# --------------------------------------------------------------------------- the load generator


@dataclass
class LoadResult:
    name: str
    sent: int = 0
    started: float = 0.0
    """``time.monotonic()`` when the first request went out."""
    ended: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    planned: int = 0
    server_cpu: float | None = None
    client_cpu: float = 0.0
    others_cpu: float | None = None
    """CPU time other processes took on the server's core during the run."""
    triggered_at: dict[int, float] = field(default_factory=dict)
    """Per incident: ``time.monotonic()`` when its triggered delivery was answered."""

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def per_cpu_second(self) -> float | None:
        """Deliveries answered per CPU-second the server used: unlike the rate,
        barely moved by other processes competing for the core."""
        if not self.server_cpu:
            return None
        return len(self.latencies) / self.server_cpu

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] * 1000


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server keeps the connection) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    chunked = False
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    if not chunked:
        return status, (await reader.readexactly(length) if length else b""), keep
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, bytes(body), keep
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _sender(
    port: int, queue: Iterator[Delivery], result: LoadResult, parse_outcome: bool, deadline: float
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        for delivery in queue:
            if time.monotonic() > deadline:
                break
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            began = time.perf_counter()
            try:
                writer.write(delivery.raw)
                status, body, keep = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.errors[type(exc).__name__] += 1
                writer.close()
                reader = writer = None
                continue
            result.latencies.append(time.perf_counter() - began)
            result.statuses[status] += 1
            result.sent += 1
            if delivery.event_type == "incident.triggered" and not delivery.redelivery:
                result.triggered_at[delivery.incident] = time.monotonic()
            if parse_outcome and body:
                with contextlib.suppress(ValueError, AttributeError):
                    answer = json.loads(body)
                    result.outcomes[str(answer.get("status") or answer.get("error"))] += 1
            if not keep:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _drive(
    port: int, workload: Sequence[Delivery], senders: int, result: LoadResult, time_limit: float
) -> None:
    # One shared iterator: each sender takes the next request when it is free,
    # so the order of the stream is kept up to the senders' concurrency.
    queue = iter(workload)
    result.planned = len(workload)
    result.started = time.monotonic()
    deadline = result.started + time_limit
    parse = result.name == "firebell"
    await asyncio.gather(*(_sender(port, queue, result, parse, deadline) for _ in range(senders)))
    result.ended = time.monotonic()


def cores_busy_seconds(cpus: set[int] | None) -> float | None:
    """CPU time the given cores spent on anything but idling, from ``/proc/stat``."""
    if not cpus:
        return None
    busy = 0
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(v) for v in values]
            busy += sum(ticks[:8]) - ticks[3] - ticks[4]  # all but idle and iowait (guest is in user)
    return busy / os.sysconf("SC_CLK_TCK")


def run_load(
    name: str,
    port: int,
    workload: Sequence[Delivery],
    senders: int,
    server: Child,
    cpus: set[int] | None,
    time_limit: float,
) -> LoadResult:
    result = LoadResult(name)
    busy_before = cores_busy_seconds(cpus)
    cpu_before = server.cpu_seconds()
    own_before = time.process_time()
    loop_factory: Any = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_drive(port, workload, senders, result, time_limit))
    cpu_after = server.cpu_seconds()
    if cpu_before is not None and cpu_after is not None:
        result.server_cpu = cpu_after - cpu_before
    result.client_cpu = time.process_time() - own_before
    busy_after = cores_busy_seconds(cpus)
    if busy_before is not None and busy_after is not None and result.server_cpu is not None:
        # Whatever else ran on the server's core meanwhile (other processes on this machine).
        result.others_cpu = max(0.0, busy_after - busy_before - result.server_cpu)
    return result


# --------------------------------------------------------------------------- watching the fake Slack


def _blocks(body: dict[str, Any]) -> list[Any]:
    blocks = body.get("blocks")
    if isinstance(blocks, str):
        with contextlib.suppress(ValueError):
            blocks = json.loads(blocks)
    return blocks if isinstance(blocks, list) else []


def is_card(request: Any) -> bool:
    """A ``chat.postMessage`` whose first block is a header: an incident card."""
    if request.key != "chat.postMessage":
        return False
    blocks = _blocks(request.body)
    return bool(blocks) and isinstance(blocks[0], dict) and blocks[0].get("type") == "header"


class SlackWatch:
    """Reads the fake Slack's request log incrementally (cheap to poll)."""

    def __init__(self, slack: Any) -> None:
        self.slack = slack
        self.cursor = 0
        self.creates = 0
        self.card_at: dict[str, float] = {}
        self.counts: Counter[str] = Counter()

    def poll(self) -> list[Any]:
        requests: list[Any] = self.slack.requests
        fresh = requests[self.cursor :]
        self.cursor = len(requests)
        for request in fresh:
            self.counts[request.key] += 1
            if request.key == "conversations.create":
                self.creates += 1
            elif is_card(request):
                channel = str(request.body.get("channel"))
                self.card_at.setdefault(channel, request.at)
        return fresh


def channels_with_cards(slack: Any, prefix: str = "inc-") -> tuple[int, int]:
    """(incident channels, those holding a card) from the fake's state."""
    channels = [c for c in slack.channels if c.name.startswith(prefix)]
    with_card = sum(
        1
        for c in channels
        if any(m.blocks and m.blocks[0].get("type") == "header" for m in slack.messages(c.id))
    )
    return len(channels), with_card


def card_lags(slack: Any, card_at: dict[str, float], triggered_at: dict[int, float]) -> list[float]:
    """Seconds from each incident's triggered 202 to its card (channels are named after the titles)."""
    lags: list[float] = []
    for channel in slack.channels:
        match = re.search(r"bench-(\d+)", channel.name)
        if match is None or channel.id not in card_at:
            continue
        answered = triggered_at.get(int(match.group(1)) - 1)
        if answered is not None:
            lags.append(card_at[channel.id] - answered)
    return sorted(lags)


def firebell_metric(port: int, name: str, labels: str) -> float | None:
    import httpx

    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


# --------------------------------------------------------------------------- the run


@dataclass
class FirebellRun:
    load: LoadResult
    cards_done_after_start: float | None = None
    cards_done_after_end: float | None = None
    creates: int = 0
    channels: int = 0
    channels_with_card: int = 0
    backlog_at_end: tuple[float | None, float | None] = (None, None)
    drained_after_end: float | None = None
    backlog_left: tuple[float | None, float | None] = (None, None)
    drain_seconds: float = 0.0
    peak_rss_kb: int | None = None
    idle_rss_kb: int | None = None
    slack_calls: Counter[str] = field(default_factory=Counter)
    card_lag: list[float] = field(default_factory=list)
    probe: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per incident: seconds from its triggered delivery's 202 to its card at the fake Slack."""


@dataclass
class LatencyRun:
    card_ms: list[float] = field(default_factory=list)
    create_ms: list[float] = field(default_factory=list)
    misses: int = 0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="firebell-bench-"))
        self.children: list[Child] = []
        self.fakes: list[Any] = []
        self.server_cpus, self.client_cpus = _cpu_plan()
        self.tls: Any = None
        self.probe_file = self.tmp / "sqlite_probe.json"

    # -- plumbing ----------------------------------------------------------------

    def close(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                child.stop()
        for fake in reversed(self.fakes):
            with contextlib.suppress(Exception):
                fake.stop()
        if self.args.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def start_fakes(self) -> tuple[Any, Any]:
        from tests.fakes import FakePagerDuty, FakeSlack, make_tls

        if self.tls is None:
            self.tls = make_tls(self.tmp / "tls")
        slack = FakeSlack("xoxb-test")
        pagerduty = FakePagerDuty("pd-test-token", tls=self.tls)
        for fake in (slack, pagerduty):
            fake.start()
            self.fakes.append(fake)
        pagerduty.add_user(PD_FROM, "firebell bot")
        for service in SERVICES:
            email = _on_call_email(service)
            slack.add_user(email, f"On call {service}")
            pagerduty.add_oncall(_policy(service), email)
        return slack, pagerduty

    def start_firebell(self, name: str, slack: Any, pagerduty: Any, probe: bool = False) -> tuple[Child, int]:
        port = free_port()
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": "x",
            "SLACK_API_URL": f"{slack.url}/api/",
            "PAGERDUTY_WEBHOOK_SECRETS": PD_SECRET,
            "PAGERDUTY_API_TOKEN": "pd-test-token",
            "PAGERDUTY_FROM_EMAIL": PD_FROM,
            "PAGERDUTY_API_URL": pagerduty.url,
            "SSL_CERT_FILE": str(self.tls.ca_file),
            "FIREBELL_DATABASE_URL": f"sqlite:///{self.tmp / name}.db",
            "FIREBELL_LOG_LEVEL": "WARNING",
        }
        for unset in ("FIREBELL_CONFIG", "SLACK_APP_TOKEN", "OPSGENIE_API_KEY", "FIREBELL_LOG_JSON"):
            env.pop(unset, None)
        # cwd is the empty temp dir, so no stray ./firebell.toml changes the defaults.
        command = (
            shlex.split(self.args.firebell_command) if self.args.firebell_command else firebell_command()
        )
        if probe:
            command = [sys.executable, str(Path(__file__).with_name("sqlite_probe.py"))]
            env["PROBE_OUT"] = str(self.probe_file)
            env["PROBE_DISABLE"] = self.args.probe_disable or ""
        command += ["serve", "--port", str(port)]
        child = Child(name, command, env, self.tmp, self.tmp / f"{name}.log")
        self.children.append(child)
        child.start(self.server_cpus)
        child.wait_listening(port)
        return child, port

    def start_bare(self) -> tuple[Child, int]:
        port = free_port()
        command = [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port)]
        child = Child("bare", command, dict(os.environ), ROOT, self.tmp / "bare.log")
        self.children.append(child)
        child.start(self.server_cpus)
        child.wait_listening(port)
        return child, port

    def wait_quiet(self, what: str) -> None:
        """Up to ``--wait-quiet`` seconds for the machine to be idle (other people's work)."""
        cores = set(os.sched_getaffinity(0)) | set(self.server_cpus or ())
        deadline = time.monotonic() + self.args.wait_quiet
        while time.monotonic() < deadline:
            before = cores_busy_seconds(cores)
            time.sleep(1.0)
            after = cores_busy_seconds(cores)
            if before is None or after is None or after - before < 0.1 * len(cores):
                return
        if self.args.wait_quiet > 0:
            self.say(f"the machine is still busy; measuring {what} anyway")

    def stop(self, child: Child) -> None:
        child.stop()
        self.children.remove(child)

    # -- phases ------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        if self.client_cpus is not None:
            os.sched_setaffinity(0, self.client_cpus)
            server, client = sorted(self.server_cpus or ()), sorted(self.client_cpus)
            self.say(f"servers pinned to core {server}, senders and fakes to {client}")
        else:
            self.say("only one core available: nothing pinned, figures are not comparable")
        began = time.monotonic()
        workload = build_workload(args.seed, args.incidents, args.deliveries, args.redeliveries)
        self.say(
            f"built {len(workload)} signed deliveries for {args.incidents} incidents "
            f"({sum(d.redelivery for d in workload)} redeliveries) in {time.monotonic() - began:.1f} s"
        )

        self.wait_quiet("the bare route")
        bare, port = self.start_bare()
        self.say(f"bare route: sending from {args.senders} senders …")
        bare_result = run_load(
            "bare", port, workload, args.senders, bare, self.server_cpus, args.send_timeout
        )
        self.stop(bare)
        self.say(f"bare route: {bare_result.rate:,.0f} deliveries/s")

        firebell_run = self.firebell_load(workload)
        latency = self.latency_phase()
        report(args, bare_result, firebell_run, latency)

    def firebell_load(self, workload: Sequence[Delivery]) -> FirebellRun:
        args = self.args
        slack, pagerduty = self.start_fakes()
        self.wait_quiet("firebell")
        firebell, port = self.start_firebell("firebell-load", slack, pagerduty, probe=args.probe)
        time.sleep(0.5)
        idle_rss_kb = firebell.status_kb("VmRSS")
        profiler = self.start_profiler(firebell)
        watch = SlackWatch(slack)
        self.say(f"firebell: sending from {args.senders} senders …")
        load = run_load(
            "firebell", port, workload, args.senders, firebell, self.server_cpus, args.send_timeout
        )
        self.say(f"firebell: {load.rate:,.0f} deliveries/s; waiting for channels and cards …")
        run = FirebellRun(load, idle_rss_kb=idle_rss_kb)
        run.backlog_at_end = (
            firebell_metric(port, "firebell_pending_work", 'queue="deliveries"'),
            firebell_metric(port, "firebell_pending_work", 'queue="jobs"'),
        )
        deadline = load.ended + args.cards_timeout
        while time.monotonic() < deadline:
            watch.poll()
            if len(watch.card_at) >= args.incidents:
                break
            time.sleep(0.05)
        if len(watch.card_at) >= args.incidents:
            done = sorted(watch.card_at.values())[args.incidents - 1]
            run.cards_done_after_start = done - load.started
            run.cards_done_after_end = max(0.0, done - load.ended)
        # The rest of the backlog (change posts into the channels): how long it
        # takes is reported, not judged; the peak RSS is read after it.
        drain_started = time.monotonic()
        deadline = drain_started + args.drain_timeout
        while time.monotonic() < deadline:
            jobs = firebell_metric(port, "firebell_pending_work", 'queue="jobs"')
            deliveries = firebell_metric(port, "firebell_pending_work", 'queue="deliveries"')
            run.backlog_left = (deliveries, jobs)
            if jobs == 0 and deliveries == 0:
                run.drained_after_end = time.monotonic() - load.ended
                break
            time.sleep(0.25)
        run.drain_seconds = time.monotonic() - drain_started
        self.stop_profiler(profiler)
        watch.poll()
        run.creates = watch.creates
        run.slack_calls = watch.counts
        run.peak_rss_kb = firebell.status_kb("VmHWM")
        run.channels, run.channels_with_card = channels_with_cards(slack)
        run.card_lag = card_lags(slack, watch.card_at, load.triggered_at)
        if firebell.process is not None and firebell.process.poll() is not None:
            self.say(f"firebell died:\n{firebell.tail()}")
        self.stop(firebell)
        if args.probe and self.probe_file.exists():
            run.probe = json.loads(self.probe_file.read_text())
        errors = [line for line in firebell.tail(200).splitlines() if "Traceback" in line or "ERROR" in line]
        if errors:
            self.say(f"firebell logged {len(errors)} error line(s); see {firebell.log} (--keep)")
        for fake in (slack, pagerduty):
            fake.stop()
            self.fakes.remove(fake)
        return run

    def latency_phase(self) -> LatencyRun:
        import httpx

        from tests.samples import pagerduty_event, pagerduty_signature

        args = self.args
        run = LatencyRun()
        if args.latency_incidents <= 0:
            return run
        slack, pagerduty = self.start_fakes()
        firebell, port = self.start_firebell("firebell-latency", slack, pagerduty)
        slack.latency = args.slack_latency
        watch = SlackWatch(slack)
        self.say(f"latency: Slack answers after {args.slack_latency * 1000:.0f} ms; one incident at a time …")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for n in range(args.latency_incidents):
                body = json.dumps(
                    pagerduty_event(
                        incident_id=f"PLAT{n:04d}",
                        title=f"Latency probe {n + 1}",
                        service=SERVICES[n % len(SERVICES)],
                        escalation_policy_id=_policy(SERVICES[n % len(SERVICES)]),
                        number=20_000 + n,
                    )
                ).encode()
                watch.poll()
                headers = {
                    "Content-Type": "application/json",
                    "X-PagerDuty-Signature": pagerduty_signature(body, PD_SECRET),
                    "X-Webhook-Id": f"latency-{n}",
                }
                response = client.post(WEBHOOK_PATH, content=body, headers=headers)
                accepted = time.monotonic()
                if response.status_code != 202:
                    run.misses += 1
                    continue
                card_at: float | None = None
                create_at: float | None = None
                deadline = accepted + 20 * args.slack_latency + 5
                while card_at is None and time.monotonic() < deadline:
                    time.sleep(0.002)
                    for request in watch.poll():
                        if request.key == "conversations.create" and create_at is None:
                            create_at = request.at
                        if is_card(request) and card_at is None:
                            card_at = request.at
                if card_at is None:
                    run.misses += 1
                    continue
                run.card_ms.append((card_at - accepted) * 1000)
                if create_at is not None:
                    run.create_ms.append((create_at - accepted) * 1000)
                # Let this incident's setup settle before the next one.
                quiet_since = time.monotonic()
                settle_deadline = quiet_since + 10 * args.slack_latency + 2
                while time.monotonic() < settle_deadline:
                    if watch.poll():
                        quiet_since = time.monotonic()
                    elif time.monotonic() - quiet_since > 3 * args.slack_latency:
                        break
                    time.sleep(0.01)
        self.stop(firebell)
        for fake in (slack, pagerduty):
            fake.stop()
            self.fakes.remove(fake)
        return run

    # -- optional profiling ------------------------------------------------------

    def start_profiler(self, firebell: Child) -> subprocess.Popen[bytes] | None:
        if not self.args.py_spy:
            return None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        command = [
            py_spy,
            "record",
            "--pid",
            str(firebell.pid),
            "--rate",
            "200",
            "--nonblocking",  # sample without pausing firebell
            "--output",
            self.args.py_spy,
        ]
        if self.args.py_spy_gil:
            command.append("--gil")  # only the thread holding the GIL: where the CPU goes
        if self.args.py_spy.endswith(".json"):
            command += ["--format", "speedscope"]
        if self.args.py_spy.endswith(".txt"):
            command += ["--format", "raw"]
        profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        return profiler

    def stop_profiler(self, profiler: subprocess.Popen[bytes] | None) -> None:
        if profiler is None:
            return
        profiler.send_signal(signal.SIGINT)
        try:
            _, err = profiler.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            profiler.kill()
            _, err = profiler.communicate()
        self.say(f"py-spy: {err.decode(errors='replace').strip().splitlines()[-1:]} → {self.args.py_spy}")


# --------------------------------------------------------------------------- the report


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "[yellow]n/a[/yellow]"
    return "[green]PASS[/green]" if ok else "[bold red]FAIL[/bold red]"


def report(args: argparse.Namespace, bare: LoadResult, run: FirebellRun, latency: LatencyRun) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    console.print(f"firebell {_revision()} · {os.cpu_count()} cores · load average {_loadavg()}")
    fb = run.load
    ratio = fb.rate / bare.rate if bare.rate else math.nan

    load = Table(
        title=f"Webhook intake: {args.deliveries:,} PagerDuty deliveries, {args.senders} senders, "
        "server on one core"
    )
    load.add_column("", style="bold")
    load.add_column("bare route", justify="right")
    load.add_column("firebell", justify="right")
    load.add_column("firebell / bare", justify="right")
    load.add_column("target", justify="right")
    load.add_column("", justify="center")
    load.add_row(
        "deliveries/s",
        f"{bare.rate:,.0f}",
        f"{fb.rate:,.0f}",
        f"{ratio:.0%}",
        f"≥ {TARGET_THROUGHPUT_RATIO:.0%} of bare",
        _verdict(ratio >= TARGET_THROUGHPUT_RATIO),
    )
    for label, q in (("p50 response", 0.50), ("p99 response", 0.99)):
        b, f = bare.percentile_ms(q), fb.percentile_ms(q)
        target = f"≤ {TARGET_P99_MS:.0f} ms" if q == 0.99 else ""
        verdict = _verdict(f <= TARGET_P99_MS) if q == 0.99 else ""
        load.add_row(label, f"{b:.1f} ms", f"{f:.1f} ms", f"{f / b:.1f}×" if b else "", target, verdict)
    load.add_row(
        "max response", f"{bare.percentile_ms(1.0):.1f} ms", f"{fb.percentile_ms(1.0):.1f} ms", "", "", ""
    )
    load.add_row("wall time", f"{bare.elapsed:.2f} s", f"{fb.elapsed:.2f} s", "", "", "")
    load.add_row(
        "server CPU", _cpu(bare.server_cpu, bare.elapsed), _cpu(fb.server_cpu, fb.elapsed), "", "", ""
    )
    b_eff, f_eff = bare.per_cpu_second, fb.per_cpu_second
    load.add_row(
        "deliveries per server CPU-second",
        _num(b_eff),
        _num(f_eff),
        f"{f_eff / b_eff:.0%}" if b_eff and f_eff else "",
        "",
        "",
    )
    load.add_row(
        "sender CPU", _cpu(bare.client_cpu, bare.elapsed), _cpu(fb.client_cpu, fb.elapsed), "", "", ""
    )
    load.add_row(
        "others on server core",
        _cpu(bare.others_cpu, bare.elapsed),
        _cpu(fb.others_cpu, fb.elapsed),
        "",
        "≈ 0",
        "" if _quiet(bare) and _quiet(fb) else "[yellow]busy[/yellow]",
    )
    load.add_row("answers", _answers(bare), _answers(fb), "", "", "")
    if bare.sent < bare.planned or fb.sent < fb.planned:
        load.add_row(
            "sent before the time limit",
            f"{bare.sent:,} of {bare.planned:,}",
            f"{fb.sent:,} of {fb.planned:,}",
            "",
            f"{args.send_timeout:g} s",
            "",
        )
    console.print(load)
    if not (_quiet(bare) and _quiet(fb)):
        console.print(
            "[yellow]Other processes took more than 5 % of the server core during a run: "
            "the figures above are not reliable; run again on a quiet machine.[/yellow]"
        )

    after = Table(title="firebell after the load (SQLite)")
    after.add_column("", style="bold")
    after.add_column("measured", justify="right")
    after.add_column("target", justify="right")
    after.add_column("", justify="center")
    if run.cards_done_after_end is not None and run.cards_done_after_start is not None:
        cards = (
            f"{run.cards_done_after_end:.2f} s (at {run.cards_done_after_start:.2f} s from the first send)"
        )
    else:
        cards = f"not all within {args.cards_timeout:g} s"
    after.add_row(
        "every incident has channel + card, after last send",
        cards,
        f"all {args.incidents}",
        _verdict(run.cards_done_after_end is not None and run.channels_with_card == args.incidents),
    )
    after.add_row(
        "channels with a card (fake Slack state)", f"{run.channels_with_card} of {run.channels}", "", ""
    )
    if run.card_lag:
        lags = run.card_lag
        after.add_row(
            "triggered 202 → its card, during the load",
            f"p50 {_quantile(lags, 0.5):.1f} s, p90 {_quantile(lags, 0.9):.1f} s, max {lags[-1]:.1f} s",
            "",
            "",
        )
    after.add_row(
        "conversations.create calls",
        str(run.creates),
        f"= {args.incidents}",
        _verdict(run.creates == args.incidents),
    )
    backlog_d, backlog_j = run.backlog_at_end
    after.add_row("backlog at last send", f"{_num(backlog_d)} deliveries, {_num(backlog_j)} jobs", "", "")
    if run.drained_after_end is not None:
        drained = f"{run.drained_after_end:.1f} s"
    else:
        left_d, left_j = run.backlog_left
        drained = f"> {args.drain_timeout:g} s ({_num(left_d)} deliveries, {_num(left_j)} jobs left"
        if backlog_j is not None and left_j is not None and run.drain_seconds:
            drained += f"; {(backlog_j - left_j) / run.drain_seconds:,.0f} jobs/s"
        drained += ")"
    after.add_row("backlog worked off, after last send", drained, "", "")
    slack_calls = ", ".join(f"{k} {v:,}" for k, v in run.slack_calls.most_common(6))
    after.add_row("Slack calls", slack_calls, "", "")
    rss_mb = run.peak_rss_kb / 1024 if run.peak_rss_kb is not None else None
    if run.idle_rss_kb is not None:
        after.add_row("RSS idle, after start-up", f"{run.idle_rss_kb / 1024:.0f} MB", "", "")
    after.add_row(
        "peak RSS (VmHWM)",
        f"{rss_mb:.0f} MB" if rss_mb is not None else "unknown",
        f"≤ {TARGET_PEAK_RSS_MB:.0f} MB",
        _verdict(None if rss_mb is None else rss_mb <= TARGET_PEAK_RSS_MB),
    )
    console.print(after)

    rtt_ms = args.slack_latency * 1000
    if args.latency_incidents > 0:
        report_latency(console, args, latency)

    if run.probe:
        report_probe(console, run.probe)

    failures = []
    if not ratio >= TARGET_THROUGHPUT_RATIO:
        failures.append(f"throughput {ratio:.0%} of the bare route (target ≥ {TARGET_THROUGHPUT_RATIO:.0%})")
    if not fb.percentile_ms(0.99) <= TARGET_P99_MS:
        failures.append(f"p99 {fb.percentile_ms(0.99):.1f} ms (target ≤ {TARGET_P99_MS:.0f} ms)")
    if run.cards_done_after_end is None or run.channels_with_card != args.incidents:
        failures.append(f"cards: {run.channels_with_card} of {args.incidents} channels have one")
    if run.creates != args.incidents:
        failures.append(f"conversations.create called {run.creates} times (target exactly {args.incidents})")
    if rss_mb is None or rss_mb > TARGET_PEAK_RSS_MB:
        failures.append(f"peak RSS {_num(rss_mb)} MB (target ≤ {TARGET_PEAK_RSS_MB:.0f} MB)")
    if args.latency_incidents > 0 and (
        not latency.card_ms or statistics.median(latency.card_ms) / rtt_ms > TARGET_CARD_ROUND_TRIPS
    ):
        median_rt = statistics.median(latency.card_ms) / rtt_ms if latency.card_ms else math.nan
        failures.append(
            f"delivery → card {median_rt:.2f} Slack round trips (target ≤ {TARGET_CARD_ROUND_TRIPS})"
        )
    for failure in failures:
        console.print(f"[bold red]FAIL[/bold red] {failure}")
    if not failures:
        console.print("[green]all targets met[/green]")


def report_latency(console: Any, args: argparse.Namespace, latency: LatencyRun) -> None:
    from rich.table import Table

    rtt_ms = args.slack_latency * 1000
    lat = Table(
        title=f"Delivery → card, Slack answering after {rtt_ms:.0f} ms ({len(latency.card_ms)} incidents)"
    )
    lat.add_column("", style="bold")
    lat.add_column("median", justify="right")
    lat.add_column("min", justify="right")
    lat.add_column("max", justify="right")
    lat.add_column("target", justify="right")
    lat.add_column("", justify="center")
    if latency.card_ms:
        rows: list[tuple[str, list[float], float | None]] = [
            ("202 → conversations.create arrives", latency.create_ms, None),
            ("202 → card chat.postMessage arrives", latency.card_ms, TARGET_CARD_ROUND_TRIPS),
        ]
        for label, values, limit in rows:
            if not values:
                continue
            median = statistics.median(values)
            lat.add_row(
                label,
                f"{median:.0f} ms = {median / rtt_ms:.2f} RT",
                f"{min(values):.0f} ms",
                f"{max(values):.0f} ms",
                f"≤ {limit} RT" if limit else "",
                _verdict(median / rtt_ms <= limit) if limit else "",
            )
    else:
        lat.add_row("202 → card chat.postMessage arrives", "no card seen", "", "", "", _verdict(False))
    if latency.misses:
        lat.add_row("probes without a card", str(latency.misses), "", "", "0", _verdict(False))
    console.print(lat)


def report_probe(console: Any, probe: dict[str, dict[str, float]]) -> None:
    from rich.table import Table

    table = Table(title="firebell's database access during the load (--probe), by total time")
    for name in ("what", "caller", "n", "total", "p50", "p99", "max"):
        table.add_column(name, justify="left" if name in ("what", "caller") else "right")
    shown: Counter[str] = Counter()
    for key, row in sorted(probe.items(), key=lambda item: -item[1]["sum"]):
        what, _, who = key.partition("\t")
        shown[what] += 1
        if shown[what] > {"pool connections in use": 1, "event loop lag": 1, "savepoint": 1}.get(what, 5):
            continue
        if what == "pool connections in use":
            counts = (f"{row[q]:.0f}" for q in ("p50", "p99", "max"))
            table.add_row(what, "(at each checkout)", f"{row['n']:,.0f}", "", *counts)
            continue
        table.add_row(
            what,
            who,
            f"{row['n']:,.0f}",
            f"{row['sum']:.2f} s",
            f"{row['p50'] * 1000:.1f} ms",
            f"{row['p99'] * 1000:.1f} ms",
            f"{row['max'] * 1000:.1f} ms",
        )
    console.print(table)


def _cpu(seconds: float | None, elapsed: float) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.1f} s ({seconds / elapsed:.0%} of a core)" if elapsed else f"{seconds:.1f} s"


def _quantile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "(unknown revision)"
    return out.stdout.strip() or "(unknown revision)"


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _quiet(result: LoadResult) -> bool:
    return result.others_cpu is None or result.others_cpu <= 0.05 * result.elapsed


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f}"


def _answers(result: LoadResult) -> str:
    parts = [f"{status}×{count:,}" for status, count in sorted(result.statuses.items())]
    parts += [f"{name} {count:,}" for name, count in result.outcomes.most_common()]
    parts += [f"{name} {count:,}" for name, count in result.errors.most_common()]
    return ", ".join(parts)


# --------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--bare-server", type=int, metavar="PORT", help="only serve the bare route on PORT")
    parser.add_argument("--deliveries", type=int, default=20_000, help="requests to send (default 20000)")
    parser.add_argument("--incidents", type=int, default=200, help="incidents they are about (default 200)")
    parser.add_argument("--redeliveries", type=float, default=0.10, help="share that are redeliveries (0.10)")
    parser.add_argument("--senders", type=int, default=50, help="concurrent connections (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument("--slack-latency", type=float, default=0.1, help="seconds per Slack answer (0.1)")
    parser.add_argument("--latency-incidents", type=int, default=10, help="probes in the latency phase (10)")
    parser.add_argument("--cards-timeout", type=float, default=30, help="seconds to wait for all cards (30)")
    parser.add_argument(
        "--drain-timeout", type=float, default=15, help="seconds to wait for the backlog (15)"
    )
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=120,
        help="stop sending to a server after this many seconds (120)",
    )
    parser.add_argument(
        "--py-spy", metavar="FILE", help="profile firebell's load phase with py-spy into FILE"
    )
    parser.add_argument(
        "--py-spy-gil", action="store_true", help="with --py-spy: sample only the thread holding the GIL"
    )
    parser.add_argument(
        "--firebell-command",
        metavar="CMD",
        help="run CMD instead of `firebell` (it gets `serve --port N`), e.g. a profiling wrapper",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run firebell's load phase under benchmarks/sqlite_probe.py and print its database timings",
    )
    parser.add_argument(
        "--probe-disable",
        metavar="LOOPS",
        help="with --probe: idle these background loops (ingest,worker) to measure the intake alone",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each load, wait up to SECONDS for other processes to leave the cores idle (0)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, server logs)")
    return parser.parse_args(argv)


class Runnable(Protocol):
    def run(self) -> None: ...

    def close(self) -> None: ...


def run_until_done(bench: Runnable) -> int:
    """Run a benchmark; SIGTERM or Ctrl-C still stop its servers and clean up."""

    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        bench.run()
    except KeyboardInterrupt:
        print("interrupted; stopping the servers", file=sys.stderr)
        return 130
    finally:
        bench.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server is not None:
        serve_bare(args.bare_server)
        return 0
    return run_until_done(Bench(args))


if __name__ == "__main__":
    sys.exit(main())
