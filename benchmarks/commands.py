"""Slash-command acknowledgement benchmark: ``/incident`` under load while Slack is slow.

Run it with ``uv run python benchmarks/commands.py`` (``--help`` lists the knobs).
It is a measurement, not a test: it exits 0 whenever it could run, and prints
PASS/FAIL against the targets (p99 time to the HTTP acknowledgement ≤ 100 ms,
no acknowledgement over 1 s, every answer HTTP 200), next to Slack's 3,000 ms
limit.

What it does, in one run (bounded: well under three minutes):

1. Starts the fake Slack and the fake PagerDuty (TLS) from ``tests.fakes`` in
   this process and ``firebell serve`` (SQLite in a temp dir, log level
   WARNING) as a child process pinned to one core; this process and the load
   generator use the other core(s).
2. Opens ``--incidents`` incidents (100) with signed PagerDuty
   ``incident.triggered`` deliveries and waits until every one has its channel
   and card at the fake and firebell's job queue is empty.
3. Makes the background slow: the fake Slack answers every call after
   ``--slack-latency`` seconds (1.5 s), so every reply firebell sends
   (response_url posts, channel posts, card updates, uploads) is slow, and keeps
   ``--slow-tasks`` (10) ``/incident postmortem`` commands running in as many
   incident channels, each sending the next as soon as the previous upload
   completed (a postmortem is a users.info plus the three-call file upload:
   about four Slack round trips, 6 s).
4. A separate sender process (the same script with ``--sender-child``) opens
   ``--senders`` (50) keep-alive connections and sends ``--commands`` (5,000)
   pre-built, signed ``/incident`` slash commands, exactly as Slack posts them
   (the form fields of ``tests.harness.SlackClient.command``), mixing
   ``summary``, ``status identified <note>`` / ``status investigating``,
   ``update <text>`` and ``timeline`` over random incident channels, as fast as
   firebell acknowledges them (closed loop) or at ``--rate`` commands/s. It
   stops after ``--max-seconds`` (30 s) even if not all were sent.
5. Measures each command's time from writing the request to reading the HTTP
   answer (the acknowledgement), then waits up to ``--reply-timeout`` seconds
   after the load for the response_url replies of the commands whose
   acknowledgement was empty, and counts how many arrived, and of what kind
   (an acknowledgement that carries a message is the answer itself).

``--probe`` runs firebell under ``benchmarks/sqlite_probe.py`` and adds its
database timings and event-loop lag; ``--py-spy FILE`` records a py-spy
profile of firebell during the load
(``uv run --with py-spy python benchmarks/commands.py --py-spy out.txt``);
``--wait-quiet SECONDS`` first waits for firebell's core to be idle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for ``benchmarks.ingest`` and ``tests`` when run as a script

# The process handling is shared with the intake benchmark.
from benchmarks.ingest import (  # noqa: E402
    Child,
    _cpu_plan,
    _loadavg,
    _read_response,
    _revision,
    cores_busy_seconds,
    firebell_command,
    firebell_metric,
    free_port,
    report_probe,
    run_until_done,
)

# Targets from the issue, and Slack's own limit.
TARGET_P99_MS = 100.0
TARGET_MAX_MS = 1000.0
SLACK_LIMIT_MS = 3000.0

SIGNING_SECRET = "bench-slack-signing-secret"
PD_SECRET = "bench-pagerduty-secret"
PD_FROM = "firebell-bot@acme.test"
EVENTS_PATH = "/slack/events"
SERVICES = ("checkout", "search", "payments", "identity", "catalog", "shipping", "ledger", "notifications")
RESPONDERS = 20
# The command mix, by weight.
MIX = (("summary", 30), ("status", 20), ("update", 25), ("timeline", 25))
NOTES = (
    "bad deploy 4711",
    "rolled back the canary",
    "database failover in progress",
    "error rate is recovering",
    "cache stampede after the config push",
    "scaling out the workers",
)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --------------------------------------------------------------------------- the sender process


def _run_sender(args: argparse.Namespace) -> int:
    """``--sender-child``: send the pickled requests, write the results as JSON."""
    requests: list[bytes] = pickle.loads(Path(args.workload).read_bytes())
    loop_factory: Any = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(_send_all(args.port, requests, args.senders, args.rate, args.max_seconds))
    result["cpu"] = time.process_time()
    Path(args.results).write_text(json.dumps(result))
    print("done", flush=True)
    return 0


async def _send_all(
    port: int, requests: Sequence[bytes], senders: int, rate: float, max_seconds: float
) -> dict[str, Any]:
    # One row per request: [HTTP status (-1: connection error), seconds to the answer,
    # time.monotonic() when it was written, seconds late against the --rate schedule,
    # the text of the acknowledgement ("" for an empty one)].
    rows: list[list[Any] | None] = [None] * len(requests)
    errors: Counter[str] = Counter()
    queue = iter(enumerate(requests))
    print("start", flush=True)
    started = time.monotonic()
    stop_at = started + max_seconds

    async def sender() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            for index, raw in queue:
                due = started + index / rate if rate > 0 else 0.0
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
                began = time.monotonic()
                if began > stop_at:
                    return
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    assert reader is not None
                    writer.write(raw)
                    status, body, keep = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors[type(exc).__name__] += 1
                    rows[index] = [-1, time.monotonic() - began, began, 0.0, ""]
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    continue
                rows[index] = [
                    status,
                    time.monotonic() - began,
                    began,
                    max(0.0, began - due) if rate else 0.0,
                    _ack_text(body),
                ]
                if not keep:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    await asyncio.gather(*(sender() for _ in range(senders)))
    return {"started": started, "ended": time.monotonic(), "rows": rows, "errors": dict(errors)}


def _ack_text(body: bytes) -> str:
    """The text of an acknowledgement with a message (Bolt answers a bare ack() with no body)."""
    if not body.strip():
        return ""
    try:
        return str(json.loads(body).get("text", ""))[:200] or "(no text)"
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")


# --------------------------------------------------------------------------- the workload


@dataclass(frozen=True)
class Command:
    kind: str
    text: str
    channel_id: str
    response_id: str
    raw: bytes


def slash_command(
    text: str, *, user_id: str, user_name: str, channel_id: str, response_url: str
) -> tuple[bytes, dict[str, str]]:
    """The body and signed headers of ``/incident <text>`` as Slack posts it."""
    from tests.harness import slack_signature_headers, slash_command_body

    body = slash_command_body(
        text, user_id=user_id, user_name=user_name, channel_id=channel_id, response_url=response_url
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **slack_signature_headers(body, SIGNING_SECRET),
    }
    return body, headers


def raw_request(body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {EVENTS_PATH} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def build_workload(
    seed: int, count: int, channels: Sequence[str], users: Sequence[tuple[str, str]], new_response_url: Any
) -> list[Command]:
    """``count`` signed commands in sending order, reproducible from ``seed``
    (the timestamps and response URLs are the only things that differ per run)."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    workload = []
    for n in range(count):
        kind = rng.choices(kinds, weights)[0]
        if kind == "status":
            text = f"status identified {rng.choice(NOTES)}" if rng.random() < 0.5 else "status investigating"
        elif kind == "update":
            text = f"update {rng.choice(NOTES)} (update {n})"
        else:
            text = kind
        channel_id = rng.choice(channels)
        user_id, user_name = rng.choice(users)
        response_url = new_response_url()
        body, headers = slash_command(
            text, user_id=user_id, user_name=user_name, channel_id=channel_id, response_url=response_url
        )
        workload.append(
            Command(kind, text, channel_id, response_url.rsplit("/", 1)[1], raw_request(body, headers))
        )
    return workload


# --------------------------------------------------------------------------- watching the fake Slack


@dataclass
class Reply:
    at: float
    text: str


@dataclass
class SlowTask:
    channel_id: str
    sent: int = 0
    done: int = 0
    sent_at: float = 0.0
    acks: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


class Observer(threading.Thread):
    """Reads the fake Slack's request log as it grows: records response_url
    posts, and keeps one ``/incident postmortem`` running per slow-task slot."""

    def __init__(self, slack: Any, firebell_url: str, slow: Sequence[str], user: tuple[str, str]) -> None:
        super().__init__(name="bench-observer", daemon=True)
        self.slack = slack
        self.url = f"{firebell_url}{EVENTS_PATH}"
        self.user = user
        self.tasks = {channel: SlowTask(channel) for channel in slow}
        self.replies: dict[str, Reply] = {}
        self.calls: Counter[str] = Counter()
        self.firing = threading.Event()
        self.stopped = threading.Event()
        self.errors: list[str] = []
        self._cursor = len(slack.requests)  # only what happens from now on
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(slow)), thread_name_prefix="bench-slow")

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=30) as client:
            while not self.stopped.is_set():
                self._poll()
                if self.firing.is_set():
                    for task in self.tasks.values():
                        if task.sent == task.done:
                            task.sent += 1
                            task.sent_at = time.monotonic()
                            self._pool.submit(self._fire, client, task)
                time.sleep(0.02)
            self._poll()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _fire(self, client: Any, task: SlowTask) -> None:
        body, headers = slash_command(
            "postmortem",
            user_id=self.user[0],
            user_name=self.user[1],
            channel_id=task.channel_id,
            response_url=self.slack.new_response_url(),
        )
        began = time.monotonic()
        try:
            status = client.post(self.url, content=body, headers=headers).status_code
        except Exception as exc:
            with self._lock:
                self.errors.append(f"postmortem: {type(exc).__name__}: {exc}")
                task.statuses[-1] += 1
                task.done += 1  # try again on the next round
            return
        with self._lock:
            task.acks.append(time.monotonic() - began)
            task.statuses[status] += 1
            if status != 200:
                task.done += 1

    def _poll(self) -> None:
        requests = self.slack.requests
        fresh = requests[self._cursor :]
        self._cursor = len(requests)
        with self._lock:
            for request in fresh:
                if request.path.startswith("/response/"):
                    self.calls["response_url"] += 1
                    response_id = request.path.rsplit("/", 1)[1]
                    text = str(request.body.get("text", ""))
                    self.replies.setdefault(response_id, Reply(request.at, text))
                    continue
                self.calls["upload" if request.path.startswith("/upload/") else request.key] += 1
                if request.key == "files.completeUploadExternal":
                    task = self.tasks.get(str(request.body.get("channel_id")))
                    if task is not None:
                        task.done += 1
                        task.durations.append(request.at - task.sent_at)

    def missing(self, response_ids: set[str]) -> int:
        """How many of these commands have no response_url reply yet."""
        with self._lock:
            return len(response_ids - self.replies.keys())

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


# --------------------------------------------------------------------------- results


@dataclass
class LoadRun:
    commands: list[Command]
    rows: list[list[Any] | None]
    started: float
    ended: float
    errors: dict[str, int]
    sender_cpu: float
    server_cpu: float | None
    others_cpu: float | None
    jobs_at_end: float | None = None
    metrics_took: float = 0.0
    replies_waited: float = 0.0
    cpu_at_end: float | None = None
    measured_at: float = 0.0
    """``time.monotonic()`` when the load's CPU figures were read, right after the last answer."""
    reply_phase_cpu: float | None = None
    py_spy: str | None = None

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    def acks(self, kind: str | None = None) -> list[float]:
        return [
            row[1]
            for command, row in zip(self.commands, self.rows, strict=True)
            if row is not None and (kind is None or command.kind == kind)
        ]

    def expecting_reply(self) -> list[Command]:
        """Commands sent and acknowledged without a message: their answer comes via response_url."""
        return [c for c, row in zip(self.commands, self.rows, strict=True) if row is not None and not row[4]]

    def answered_in_ack(self) -> Counter[str]:
        """The texts of acknowledgements that carried the answer themselves."""
        return Counter(str(row[4]) for row in self.rows if row is not None and row[4])

    @property
    def statuses(self) -> Counter[int]:
        return Counter(int(row[0]) for row in self.rows if row is not None)

    @property
    def sent(self) -> int:
        return sum(1 for row in self.rows if row is not None)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "–"
    return f"{seconds * 1000:,.0f} ms" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def share(values: Sequence[float], limit_s: float) -> str:
    over = sum(1 for v in values if v > limit_s)
    return f"{over} ({over / len(values):.1%})" if values else "–"


def reply_kind(text: str) -> str:
    if text.startswith(":x:"):
        return "failed (:x:)"
    if text.startswith(":warning:"):
        return "refused (:warning:)"
    return "answered"


# --------------------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="firebell-commands-"))
        self.server_cpus, self.client_cpus = _cpu_plan()
        self.fakes: list[Any] = []
        self.firebell: Child | None = None
        self.sender: subprocess.Popen[bytes] | None = None
        self.profiler: subprocess.Popen[bytes] | None = None
        self.observer: Observer | None = None
        self.deadline = time.monotonic() + float(args.budget)
        self.probe_file = self.tmp / "sqlite_probe.json"

    def close(self) -> None:
        if self.observer is not None:
            self.observer.stop()
        for process in (self.sender, self.profiler):
            if process is not None and process.poll() is None:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        if self.fakes:
            self.fakes[0].latency = 0.0  # let firebell's calls in flight finish quickly
        if self.firebell is not None:
            with contextlib.suppress(Exception):
                self.firebell.stop()
        if self.fakes:
            # Answers already sleeping in the fake finish before it stops.
            time.sleep(self.args.slack_latency + 0.25)
        for fake in reversed(self.fakes):
            with contextlib.suppress(Exception):
                fake.stop()
        if self.args.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def wait_quiet(self) -> None:
        """Up to ``--wait-quiet`` seconds for firebell's core to be idle (other people's work)."""
        if self.args.wait_quiet <= 0 or not self.server_cpus:
            return
        deadline = time.monotonic() + self.args.wait_quiet
        while time.monotonic() < deadline:
            before = cores_busy_seconds(self.server_cpus)
            time.sleep(1.0)
            after = cores_busy_seconds(self.server_cpus)
            if before is None or after is None or after - before < 0.1:
                return
        say("firebell's core is still busy with other work; measuring anyway")

    # -- setup ---------------------------------------------------------------------

    def start(self) -> tuple[Any, Any, int]:
        from tests.fakes import FakePagerDuty, FakeSlack, make_tls

        tls = make_tls(self.tmp / "tls")
        slack = FakeSlack("xoxb-bench")
        pagerduty = FakePagerDuty("pd-bench-token", tls=tls)
        for fake in (slack, pagerduty):
            fake.start()
            self.fakes.append(fake)
        pagerduty.add_user(PD_FROM, "firebell bot")
        for service in SERVICES:
            email = f"oncall-{service}@acme.test"
            slack.add_user(email, f"On call {service}")
            pagerduty.add_oncall(f"PEP{service[:4].upper()}", email)
        port = free_port()
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{slack.url}/api/",
            "PAGERDUTY_WEBHOOK_SECRETS": PD_SECRET,
            "PAGERDUTY_API_TOKEN": "pd-bench-token",
            "PAGERDUTY_FROM_EMAIL": PD_FROM,
            "PAGERDUTY_API_URL": pagerduty.url,
            "SSL_CERT_FILE": str(tls.ca_file),
            "FIREBELL_DATABASE_URL": f"sqlite:///{self.tmp / 'firebell.db'}",
            "FIREBELL_LOG_LEVEL": "WARNING",
        }
        for unset in ("FIREBELL_CONFIG", "SLACK_APP_TOKEN", "OPSGENIE_API_KEY", "FIREBELL_LOG_JSON"):
            env.pop(unset, None)
        command = firebell_command()
        if self.args.probe:
            # benchmarks/sqlite_probe.py runs firebell with timers on its database access.
            command = [sys.executable, str(Path(__file__).with_name("sqlite_probe.py"))]
            env["PROBE_OUT"] = str(self.probe_file)
        # cwd is the empty temp dir, so no stray ./firebell.toml changes the defaults.
        self.firebell = Child(
            "firebell",
            [*command, "serve", "--port", str(port)],
            env,
            self.tmp,
            self.tmp / "firebell.log",
        )
        self.firebell.start(self.server_cpus)
        self.firebell.wait_listening(port)
        return slack, pagerduty, port

    def open_incidents(self, slack: Any, port: int) -> list[str]:
        from tests.conftest import send_pagerduty
        from tests.samples import pagerduty_event

        url = f"http://127.0.0.1:{port}"
        began = time.monotonic()
        for n in range(self.args.incidents):
            service = SERVICES[n % len(SERVICES)]
            event = pagerduty_event(
                incident_id=f"P{n}",
                title=f"{service.capitalize()} API error rate above 5% (bench {n + 1})",
                service=service,
                escalation_policy_id=f"PEP{service[:4].upper()}",
                number=10_000 + n,
                priority=("P1", "P2", "P3")[n % 3],
            )
            answer = send_pagerduty(url, event, secret=PD_SECRET, webhook_id=f"bench-{n}")
            if answer.status_code != 202:
                raise RuntimeError(f"PagerDuty delivery {n} answered {answer.status_code}: {answer.text}")
        deadline = time.monotonic() + min(90.0, self.left())
        channels: list[str] = []
        while time.monotonic() < deadline:
            channels = [c.id for c in slack.channels if c.name.startswith("inc-")]
            if len(channels) >= self.args.incidents:
                jobs = firebell_metric(port, "firebell_pending_work", 'queue="jobs"')
                deliveries = firebell_metric(port, "firebell_pending_work", 'queue="deliveries"')
                if jobs == 0 and deliveries == 0:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(
                f"only {len(channels)} of {self.args.incidents} incident channels (or work still pending) "
                f"after {time.monotonic() - began:.0f} s"
            )
        say(f"{len(channels)} incidents open, channels and cards done in {time.monotonic() - began:.1f} s")
        return channels

    # -- the run -------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        if self.client_cpus is not None:
            os.sched_setaffinity(0, self.client_cpus)
            say(
                f"firebell pinned to core {sorted(self.server_cpus or ())}, "
                f"fakes and senders to {sorted(self.client_cpus)}"
            )
        else:
            say("only one core available: nothing pinned, figures are not comparable")
        self.wait_quiet()
        slack, _pagerduty, port = self.start()
        assert self.firebell is not None
        channels = self.open_incidents(slack, port)
        users = [
            (slack.add_user(f"responder{n}@acme.test", f"Responder {n}"), f"responder{n}")
            for n in range(RESPONDERS)
        ]
        rng = random.Random(args.seed)
        slow = rng.sample(channels, min(args.slow_tasks, len(channels)))
        began = time.monotonic()
        workload = build_workload(args.seed, args.commands, channels, users, slack.new_response_url)
        say(f"built {len(workload):,} signed commands in {time.monotonic() - began:.1f} s")
        workload_file = self.tmp / "workload.pickle"
        workload_file.write_bytes(pickle.dumps([c.raw for c in workload]))

        slack.latency = args.slack_latency
        observer = Observer(slack, f"http://127.0.0.1:{port}", slow, users[0])
        self.observer = observer
        observer.start()
        observer.firing.set()
        say(
            f"Slack answers after {args.slack_latency * 1000:.0f} ms; "
            f"starting {len(slow)} postmortems in a loop …"
        )
        # The load starts once every slow task has been acknowledged and is working.
        wait_until = time.monotonic() + 20
        while time.monotonic() < wait_until and any(not t.acks for t in observer.tasks.values()):
            time.sleep(0.05)

        run = self.load(port, workload, workload_file)
        observer.firing.clear()
        say(f"sent {run.sent:,} commands in {run.elapsed:.1f} s; waiting for the response_url replies …")
        began = time.monotonic()
        run.jobs_at_end = firebell_metric(port, "firebell_pending_work", 'queue="jobs"')
        run.metrics_took = time.monotonic() - began
        wanted = {c.response_id for c in run.expecting_reply()}
        reply_deadline = run.measured_at + max(0.0, min(args.reply_timeout, self.left() - 20))
        while time.monotonic() < reply_deadline:
            if observer.missing(wanted) == 0:
                break
            time.sleep(0.1)
        run.replies_waited = time.monotonic() - run.measured_at
        cpu = self.firebell.cpu_seconds()
        if cpu is not None and run.cpu_at_end is not None:
            run.reply_phase_cpu = cpu - run.cpu_at_end
        observer.stop()
        self.observer = None
        if self.firebell.process is not None and self.firebell.process.poll() is not None:
            say(f"firebell died:\n{self.firebell.tail()}")
        peak = self.firebell.status_kb("VmHWM")
        probe: dict[str, dict[str, float]] = {}
        if args.probe:
            slack.latency = 0.0
            self.firebell.stop()  # the probe writes its summary when firebell stops
            if self.probe_file.exists():
                probe = json.loads(self.probe_file.read_text())
        report(args, run, observer, len(channels), self.firebell, peak, probe)

    def load(self, port: int, workload: list[Command], workload_file: Path) -> LoadRun:
        args = self.args
        assert self.firebell is not None
        results_file = self.tmp / "results.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--sender-child",
            "--port",
            str(port),
            "--senders",
            str(args.senders),
            "--rate",
            str(args.rate),
            "--max-seconds",
            str(args.max_seconds),
            "--workload",
            str(workload_file),
            "--results",
            str(results_file),
        ]
        if self.client_cpus is not None and shutil.which("taskset"):
            command = ["taskset", "-c", ",".join(map(str, sorted(self.client_cpus))), *command]
        self.sender = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True)
        assert self.sender.stdout is not None
        line = self.sender.stdout.readline()  # "start", right before the first request
        if line.strip() != b"start":
            raise RuntimeError(f"the sender process did not start (exit {self.sender.wait()})")
        busy_before = cores_busy_seconds(self.server_cpus)
        cpu_before = self.firebell.cpu_seconds()
        self.profiler = self.start_profiler()
        mode = f"{args.rate:g} commands/s" if args.rate > 0 else "as fast as acknowledged"
        say(
            f"{args.senders} senders sending {len(workload):,} commands "
            f"({mode}, at most {args.max_seconds:g} s) …"
        )
        try:
            self.sender.wait(timeout=args.max_seconds + 60)
        except subprocess.TimeoutExpired:
            self.sender.kill()
            raise RuntimeError("the sender process did not finish") from None
        cpu_after = self.firebell.cpu_seconds()
        busy_after = cores_busy_seconds(self.server_cpus)
        measured_at = time.monotonic()
        py_spy = self.stop_profiler()
        self.sender = None
        result = json.loads(results_file.read_text())
        server_cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
        others = (
            max(0.0, busy_after - busy_before - server_cpu)
            if busy_after is not None and busy_before is not None and server_cpu is not None
            else None
        )
        return LoadRun(
            commands=workload,
            rows=result["rows"],
            started=result["started"],
            ended=result["ended"],
            errors=result["errors"],
            sender_cpu=result["cpu"],
            server_cpu=server_cpu,
            others_cpu=others,
            py_spy=py_spy,
            cpu_at_end=cpu_after,
            measured_at=measured_at,
        )

    # -- optional profiling --------------------------------------------------------

    def start_profiler(self) -> subprocess.Popen[bytes] | None:
        if not self.args.py_spy or self.firebell is None:
            return None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        command = [py_spy, "record", "--pid", str(self.firebell.pid), "--rate", "250", "--nonblocking"]
        command += ["--output", self.args.py_spy]
        if self.args.py_spy.endswith(".json"):
            command += ["--format", "speedscope"]
        elif self.args.py_spy.endswith(".txt"):
            command += ["--format", "raw"]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop_profiler(self) -> str | None:
        profiler, self.profiler = self.profiler, None
        if profiler is None:
            return None
        profiler.send_signal(signal.SIGINT)
        try:
            _, err = profiler.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            profiler.kill()
            _, err = profiler.communicate()
        lines = err.decode(errors="replace").strip().splitlines()
        return f"{lines[-1] if lines else 'py-spy ended'} → {self.args.py_spy}"


# --------------------------------------------------------------------------- the report


def _verdict(ok: bool) -> str:
    return "[green]PASS[/green]" if ok else "[bold red]FAIL[/bold red]"


def _cpu(seconds: float | None, elapsed: float) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.1f} s ({seconds / elapsed:.0%} of a core)" if elapsed else f"{seconds:.1f} s"


def report(
    args: argparse.Namespace,
    run: LoadRun,
    observer: Observer,
    incidents: int,
    firebell: Child,
    peak_rss_kb: int | None,
    probe: dict[str, dict[str, float]],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=130)
    console.print(f"firebell {_revision()} · {os.cpu_count()} cores · load average {_loadavg()}")
    mode = f"paced at {args.rate:g}/s" if args.rate > 0 else "closed loop: next command on each ack"
    slow_ms = args.slack_latency * 1000

    dist = Table(
        title=f"Time to the HTTP acknowledgement: {run.sent:,} /incident commands, {args.senders} senders "
        f"({mode}), {incidents} open incidents, Slack answering after {slow_ms:,.0f} ms"
    )
    dist.add_column("command", style="bold")
    for name in ("count", "p50", "p90", "p99", "max", "> 1 s", f"> {SLACK_LIMIT_MS:,.0f} ms (Slack's limit)"):
        dist.add_column(name, justify="right")
    kinds = [kind for kind, _ in MIX]
    for kind in [*kinds, None]:
        values = run.acks(kind)
        dist.add_row(
            kind or "all",
            f"{len(values):,}",
            *(ms(percentile(values, q)) for q in (0.50, 0.90, 0.99, 1.0)),
            share(values, 1.0),
            share(values, SLACK_LIMIT_MS / 1000),
            style="bold" if kind is None else None,
        )
    pm_acks = [a for task in observer.tasks.values() for a in task.acks]
    dist.add_row(
        "postmortem (slow tasks)",
        f"{len(pm_acks):,}",
        *(ms(percentile(pm_acks, q)) for q in (0.50, 0.90, 0.99, 1.0)),
        share(pm_acks, 1.0),
        share(pm_acks, SLACK_LIMIT_MS / 1000),
        style="dim",
    )
    console.print(dist)

    acks = run.acks()
    p99 = percentile(acks, 0.99)
    worst = percentile(acks, 1.0)
    statuses = run.statuses
    non_200 = sum(count for status, count in statuses.items() if status != 200)
    wanted = run.expecting_reply()
    arrived = [observer.replies[c.response_id] for c in wanted if c.response_id in observer.replies]
    reply_kinds = Counter(reply_kind(r.text) for r in arrived)
    reply_after = [
        observer.replies[c.response_id].at - row[2]
        for c, row in zip(run.commands, run.rows, strict=True)
        if row is not None and c.response_id in observer.replies
    ]

    verdict = Table(title="Targets")
    verdict.add_column("", style="bold")
    verdict.add_column("measured", justify="right")
    verdict.add_column("target", justify="right")
    verdict.add_column("", justify="center")
    verdict.add_row(
        "p99 acknowledgement", ms(p99), f"≤ {TARGET_P99_MS:.0f} ms", _verdict(p99 <= TARGET_P99_MS / 1000)
    )
    verdict.add_row(
        "slowest acknowledgement",
        ms(worst),
        f"≤ {TARGET_MAX_MS:,.0f} ms",
        _verdict(worst <= TARGET_MAX_MS / 1000),
    )
    answers = ", ".join(f"{'error' if s < 0 else s}×{n:,}" for s, n in sorted(statuses.items()))
    if run.errors:
        answers += " (" + ", ".join(f"{k} {v}" for k, v in run.errors.items()) + ")"
    verdict.add_row("non-200 answers", f"{non_200:,}  [dim]{answers}[/dim]", "0", _verdict(non_200 == 0))
    unsent = len(run.commands) - run.sent
    verdict.add_row(
        "commands sent",
        f"{run.sent:,} of {len(run.commands):,} in {run.elapsed:.1f} s ({run.sent / run.elapsed:,.0f}/s)",
        "all",
        _verdict(unsent == 0),
    )
    verdict.add_row(
        "response_url replies arrived",
        f"{len(arrived):,} of {len(wanted):,} (waited {run.replies_waited:.1f} s after the load)",
        "all",
        _verdict(len(arrived) == len(wanted)),
    )
    in_ack = run.answered_in_ack()
    if in_ack:
        text, _ = in_ack.most_common(1)[0]
        verdict.add_row(
            "answered in the acknowledgement itself",
            f"{sum(in_ack.values()):,}  [dim]e.g. {text[:60]}[/dim]",
            "",
            "",
        )
    failed = reply_kinds["failed (:x:)"]
    verdict.add_row("replies reporting a failure (:x:)", f"{failed:,}", "0", _verdict(failed == 0))
    console.print(verdict)

    detail = Table(title="Around the load")
    detail.add_column("", style="bold")
    detail.add_column("", overflow="fold")
    detail.add_row("replies by kind", ", ".join(f"{k} {v:,}" for k, v in reply_kinds.most_common()) or "none")
    detail.add_row(
        "command sent → firebell posts its reply",
        f"p50 {ms(percentile(reply_after, 0.5))}, p99 {ms(percentile(reply_after, 0.99))}, "
        f"max {ms(percentile(reply_after, 1.0))} "
        f"(arrival at the fake Slack, before its {slow_ms:,.0f} ms delay)",
    )
    done = sum(t.done for t in observer.tasks.values())
    durations = [d for t in observer.tasks.values() for d in t.durations]
    detail.add_row(
        f"the {len(observer.tasks)} slow tasks",
        f"`/incident postmortem` in {len(observer.tasks)} incident channels, each re-sent when its upload "
        f"completed: {sum(t.sent for t in observer.tasks.values())} sent, {done} uploads completed, "
        f"median {ms(percentile(durations, 0.5))} each; "
        f"plus every Slack call firebell makes waits {slow_ms:,.0f} ms",
    )
    backlog = f"{run.jobs_at_end:,.0f} jobs" if run.jobs_at_end is not None else "unknown"
    detail.add_row(
        "firebell job backlog at the end of the load",
        f"{backlog} (GET /metrics answered in {ms(run.metrics_took)})",
    )
    calls = ", ".join(f"{k} {v:,}" for k, v in observer.calls.most_common(8))
    detail.add_row("Slack calls after the setup", calls)
    detail.add_row("firebell CPU during the load", _cpu(run.server_cpu, run.elapsed))
    detail.add_row(
        "firebell CPU from the end of the load to the last reply",
        _cpu(run.reply_phase_cpu, run.replies_waited),
    )
    detail.add_row("sender CPU", _cpu(run.sender_cpu, run.elapsed))
    quiet = run.others_cpu is None or run.others_cpu <= 0.05 * run.elapsed
    detail.add_row(
        "others on firebell's core",
        _cpu(run.others_cpu, run.elapsed) + ("" if quiet else "  [yellow]busy: figures unreliable[/yellow]"),
    )
    detail.add_row("firebell peak RSS", f"{peak_rss_kb / 1024:.0f} MB" if peak_rss_kb is not None else "?")
    if run.py_spy:
        detail.add_row("py-spy", run.py_spy)
    if observer.errors:
        detail.add_row("slow-task errors", "; ".join(observer.errors[:3]))
    log = firebell.log.read_text(errors="replace") if firebell.log.exists() else ""
    errors = [line for line in log.splitlines() if " ERROR " in line]
    if errors:
        detail.add_row(
            "firebell log", f"{len(errors):,} ERROR line(s), e.g. {errors[0][:200]} (--keep to read)"
        )
    console.print(detail)
    if probe:
        console.print("[dim]--probe: the whole life of firebell, set-up included[/dim]")
        report_probe(console, probe)


# --------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--commands", type=int, default=5000, help="commands to send (default 5000)")
    parser.add_argument("--senders", type=int, default=50, help="concurrent senders (default 50)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="commands/s to pace the senders at; 0 = closed loop (default)"
    )
    parser.add_argument("--max-seconds", type=float, default=30.0, help="stop sending after this (30)")
    parser.add_argument("--incidents", type=int, default=100, help="open incidents (default 100)")
    parser.add_argument("--slow-tasks", type=int, default=10, help="postmortems kept running (default 10)")
    parser.add_argument("--slack-latency", type=float, default=1.5, help="seconds per Slack answer (1.5)")
    parser.add_argument("--reply-timeout", type=float, default=45.0, help="seconds to wait for replies (45)")
    parser.add_argument("--budget", type=float, default=170.0, help="seconds the whole run may take (170)")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for firebell's core to be idle (default 0: don't wait)",
    )
    parser.add_argument(
        "--py-spy", metavar="FILE", help="profile firebell during the load with py-spy into FILE"
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run firebell under benchmarks/sqlite_probe.py and print its database timings and loop lag",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, firebell log)")
    # The sender process (started by the benchmark itself).
    parser.add_argument("--sender-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sender_child:
        return _run_sender(args)
    return run_until_done(Bench(args))


if __name__ == "__main__":
    sys.exit(main())
