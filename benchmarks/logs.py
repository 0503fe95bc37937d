"""Access-log analysis benchmark: ``firebell diag logs --json`` against GoAccess, same file.

Run it with ``uv run python benchmarks/logs.py`` (``--help`` lists the knobs).
It is a measurement, not a test: it exits 0 whenever it could run, and prints
PASS/FAIL against each target. GoAccess comes from Debian's ``goaccess``
package (``.ci/install-deps`` does not install it; ``apt-get install goaccess``).

What it does, in one run:

1. Generates a reproducible (``--seed``) nginx ``combined`` + ``$request_time``
   log of ``--lines`` lines (2,000,000 by default) in a temp dir: four hours of
   traffic from a few thousand clients, with a ten-minute 5xx spike (502, 503,
   504 on a few checkout paths, slow 504s) two thirds of the way through.
2. Times ``firebell diag logs --json FILE`` as a child process (the installed
   console script, as an operator would run it) and samples the summed RSS of
   (and PSS) of its process tree every 10 ms; ``wait4`` adds the largest
   single process. The RSS target applies to the summed RSS, which counts
   pages that forked workers share with the parent once per process.
3. Times ``goaccess FILE --log-format=COMBINED -o report.json`` with the
   global config, progress output and the panels the comparison does not need
   turned off, so GoAccess does no more work than it must.
4. Prints both throughputs (lines/s), their ratio, firebell's peak RSS, its
   start-up time (``firebell --help``: imports before any parsing), and
   whether both counted the same requests and status codes; PASS/FAIL against
   the targets (≥ 6× GoAccess's throughput, ≤ 300 MB, equal counts).

The machine should be otherwise idle: both tools are timed by wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TARGET_RATIO = 6.0
TARGET_RSS_MB = 300.0
SPAN_SECONDS = 4 * 3600
SPIKE_AT = 0.66  # fraction of the span where the spike starts
SPIKE_MINUTES = 10
# Panels GoAccess may skip: the comparison needs totals and status codes only.
GOACCESS_IGNORED_PANELS = (
    "VISITORS",
    "REQUESTS_STATIC",
    "NOT_FOUND",
    "OS",
    "BROWSERS",
    "VISIT_TIMES",
    "VIRTUAL_HOSTS",
    "REFERRERS",
    "REFERRING_SITES",
    "KEYPHRASES",
    "GEO_LOCATION",
    "REMOTE_USER",
    "CACHE_STATUS",
    "MIME_TYPE",
    "TLS_TYPE",
)

# --- the workload ----------------------------------------------------------

_PATHS = (
    [f"/api/v1/items/{i}" for i in range(200)]
    + [f"/api/v1/users/{i}/orders" for i in range(50)]
    + ["/", "/login", "/logout", "/search?q=shoes", "/search?q=hats&page=2", "/healthz"]
    + [f"/static/app.{i}.js" for i in range(10)]
    + [f"/static/img/{i}.png" for i in range(30)]
)
_SPIKE_PATHS = ["/api/v1/checkout", "/api/v1/cart", "/api/v1/payments/authorize"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "curl/8.5.0",
    "python-httpx/0.27.0",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]
_REFERERS = [
    "-",
    "-",
    "https://shop.example.com/",
    "https://www.google.com/",
    "https://shop.example.com/cart",
]
_NORMAL_STATUS = [200] * 850 + [304] * 40 + [301] * 20 + [302] * 10 + [404] * 30 + [499] * 5
_NORMAL_STATUS += [500] * 2 + [502] * 2 + [503] * 1


@dataclass(frozen=True)
class Workload:
    path: Path
    lines: int
    bytes: int
    spike_start: datetime
    spike_end: datetime
    seconds: float


def generate(path: Path, lines: int, seed: int) -> Workload:
    """Write the log; lines are spread evenly over ``SPAN_SECONDS``."""
    started = time.perf_counter()
    rng = random.Random(seed)
    clients = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"]
    clients += [f"10.{i // 250 % 250}.{i % 250}.{(i * 7) % 250 + 1}" for i in range(4000)]
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(clients))]
    start = datetime(2024, 3, 5, 10, 0, 0, tzinfo=UTC)
    spike_start = start + timedelta(seconds=int(SPAN_SECONDS * SPIKE_AT) // 60 * 60)
    spike_end = spike_start + timedelta(minutes=SPIKE_MINUTES)
    per_second = lines / SPAN_SECONDS
    written = 0
    with open(path, "w", encoding="ascii", buffering=1 << 20) as out:
        for second in range(SPAN_SECONDS):
            count = int((second + 1) * per_second) - written
            if count <= 0:
                continue
            now = start + timedelta(seconds=second)
            stamp = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
            spiking = spike_start <= now < spike_end
            who = rng.choices(clients, weights, k=count)
            batch: list[str] = []
            for client in who:
                if spiking and rng.random() < 0.45:
                    status = rng.choice((502, 502, 502, 504, 504, 503))
                    target = rng.choice(_SPIKE_PATHS)
                    latency = 60.0 if status == 504 else rng.uniform(0.0, 0.01)
                else:
                    status = rng.choice(_NORMAL_STATUS)
                    target = rng.choice(_PATHS)
                    latency = rng.lognormvariate(-3.0, 1.0)
                method = "POST" if target in _SPIKE_PATHS else "GET"
                size = 0 if status in (304, 499) else rng.randint(200, 60000)
                batch.append(
                    f'{client} - - [{stamp}] "{method} {target} HTTP/1.1" {status} {size} '
                    f'"{rng.choice(_REFERERS)}" "{rng.choice(_AGENTS)}" {latency:.3f}\n'
                )
            out.write("".join(batch))
            written += count
    return Workload(path, written, path.stat().st_size, spike_start, spike_end, time.perf_counter() - started)


# --- running and measuring -------------------------------------------------


def _tree_memory(root: int) -> tuple[int, int]:
    """(summed VmRSS, summed Pss) in bytes of ``root`` and its descendants.

    RSS counts pages a forked worker shares with its parent once per process
    (an over-count); PSS splits shared pages between the sharers."""
    rss = pss = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
                        break
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    stack.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue
    return rss, pss


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_tree_rss: int  # sampled sum over the process tree
    peak_tree_pss: int
    max_rss: int  # largest single process (wait4)
    returncode: int
    stderr: str


def run_measured(command: Sequence[str], stdout_path: Path, timeout: float) -> Run:
    with open(stdout_path, "wb") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE)
        peak_rss = peak_pss = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak_rss, peak_pss
            while not done.is_set():
                rss, pss = _tree_memory(process.pid)
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
                done.wait(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        deadline = started + timeout
        status = 0
        usage: Any = None
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode("utf-8", "replace") if process.stderr else ""
    return Run(elapsed, peak_rss, peak_pss, usage.ru_maxrss * 1024, process.returncode, stderr)


def firebell_command() -> list[str]:
    script = Path(sys.executable).with_name("firebell")
    if script.exists():
        return [str(script)]
    found = shutil.which("firebell")
    if found:
        return [found]
    return [sys.executable, "-c", "from handlers.cli import main; main()"]


def goaccess_counts(report: dict[str, Any]) -> tuple[int, int, dict[int, int]]:
    general = report.get("general", {})
    statuses: dict[int, int] = {}
    for group in report.get("status_codes", {}).get("data", []):
        for item in group.get("items", []):
            code = str(item.get("data", "")).split(" ", 1)[0]
            if code.isdigit():
                statuses[int(code)] = statuses.get(int(code), 0) + int(item["hits"]["count"])
    return int(general.get("total_requests", 0)), int(general.get("valid_requests", 0)), statuses


def _mb(value: int) -> str:
    return f"{value / 1e6:.0f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=2_000_000, help="log lines to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per tool")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (its path is printed)")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    args = parser.parse_args(argv)

    goaccess = shutil.which("goaccess")
    if goaccess is None:
        print("goaccess is not installed (Debian package: goaccess)", file=sys.stderr)
        return 1
    version = subprocess.run([goaccess, "--version"], capture_output=True, text=True, check=False)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="firebell-logs-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        print(f"generating {args.lines:,} lines in {workdir} …", flush=True)
        work = generate(workdir / "access.log", args.lines, args.seed)
        print(
            f"  {work.bytes / 1e6:.0f} MB in {work.seconds:.1f} s; spike {work.spike_start:%H:%M}–"
            f"{work.spike_end:%H:%M} UTC",
            flush=True,
        )

        started = time.perf_counter()
        subprocess.run([*firebell_command(), "--help"], capture_output=True, check=False)
        startup = time.perf_counter() - started
        fb_out = workdir / "firebell.json"
        print("timing firebell diag logs --json …", flush=True)
        fb = run_measured(
            [*firebell_command(), "diag", "logs", "--json", str(work.path)], fb_out, args.timeout
        )
        ga_out = workdir / "goaccess.json"
        ga_cmd = [
            goaccess,
            str(work.path),
            "--log-format=COMBINED",
            "--no-global-config",
            "--no-progress",
            "--no-parsing-spinner",
            *(f"--ignore-panel={panel}" for panel in GOACCESS_IGNORED_PANELS),
            "-o",
            str(ga_out),
        ]
        print("timing goaccess … -o report.json …", flush=True)
        ga = run_measured(ga_cmd, workdir / "goaccess.stdout", args.timeout)
        for name, run in (("firebell", fb), ("goaccess", ga)):
            if run.returncode != 0:
                print(f"{name} failed (exit {run.returncode}): {run.stderr.strip()[-2000:]}")
                return 1

        fb_report = json.loads(fb_out.read_text())
        fb_status = {int(code): count for code, count in fb_report["status"].items()}
        ga_total, ga_valid, ga_status = goaccess_counts(json.loads(ga_out.read_text()))
        spikes = fb_report["spikes"]
        worst = spikes[fb_report["worst_spike"]] if spikes else None

        fb_rate = work.lines / fb.seconds
        ga_rate = work.lines / ga.seconds
        ratio = fb_rate / ga_rate
        same_requests = fb_report["requests"] == ga_valid == work.lines
        same_status = fb_status == ga_status
        ga_version = (version.stdout.splitlines() or ["?"])[0]

        def verdict(ok: bool) -> str:
            return "PASS" if ok else "FAIL"

        print()
        print(
            f"Access-log analysis: {work.lines:,} lines, {work.bytes / 1e6:.0f} MB, "
            f"nginx combined + $request_time, {os.cpu_count()} cores"
        )
        rows = [
            ("", "firebell", "goaccess", "target", ""),
            ("wall time", f"{fb.seconds:.2f} s", f"{ga.seconds:.2f} s", "", ""),
            ("of which start-up", f"{startup:.2f} s", "", "", ""),
            ("throughput", f"{fb_rate:,.0f} lines/s", f"{ga_rate:,.0f} lines/s", "", ""),
            ("ratio", f"{ratio:.1f}×", "1×", f"≥ {TARGET_RATIO:.0f}×", verdict(ratio >= TARGET_RATIO)),
            (
                "peak RSS (tree)",
                _mb(fb.peak_tree_rss),
                _mb(ga.peak_tree_rss),
                f"≤ {TARGET_RSS_MB:.0f} MB",
                verdict(fb.peak_tree_rss <= TARGET_RSS_MB * 1e6),
            ),
            ("peak PSS (tree)", _mb(fb.peak_tree_pss), _mb(ga.peak_tree_pss), "", ""),
            ("max RSS (1 proc)", _mb(fb.max_rss), _mb(ga.max_rss), "", ""),
            (
                "requests",
                f"{fb_report['requests']:,}",
                f"{ga_valid:,} of {ga_total:,}",
                f"= {work.lines:,}",
                verdict(same_requests),
            ),
            (
                "status codes",
                f"{len(fb_status)} codes",
                f"{len(ga_status)} codes",
                "equal",
                verdict(same_status),
            ),
            (
                "5xx spike",
                f"{worst['start'][11:16]}–{worst['end'][11:16]} ×{worst['peak_ratio']}" if worst else "none",
                "—",
                f"{work.spike_start:%H:%M}–{work.spike_end:%H:%M}",
                verdict(
                    worst is not None
                    and worst["start"][11:16] == f"{work.spike_start:%H:%M}"
                    and worst["end"][11:16] == f"{work.spike_end:%H:%M}"
                ),
            ),
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        print(
            "status codes (firebell / goaccess): "
            + ", ".join(
                f"{code} {fb_status.get(code, 0):,}/{ga_status.get(code, 0):,}"
                for code in sorted(set(fb_status) | set(ga_status))
            )
        )
        print(
            f"({ga_version}; firebell latency p50/p95/p99 = "
            f"{fb_report['latency']['p50']:.3f}/{fb_report['latency']['p95']:.3f}/"
            f"{fb_report['latency']['p99']:.3f} s)"
        )
        return 0
    finally:
        if args.keep or args.workdir:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
