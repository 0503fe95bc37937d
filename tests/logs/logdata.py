"""Generated access logs with a known 5xx spike, in several formats.

Traffic is ``per_minute`` requests a minute for ``minutes`` minutes from
``START``; minutes ``spike_from`` to ``spike_to`` (exclusive) answer half of
their requests with 502/504 on ``/api/checkout`` through upstream
``10.0.9.9:8080`` from client ``203.0.113.66``. Outside the spike every 7th
minute has one 500 (too few to be a spike). Latencies are 20 ms, and 30 s for
the spike's 504s.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

START = datetime(2024, 3, 5, 12, 0, 0, tzinfo=UTC)
SPIKE_PATH = "/api/checkout"
SPIKE_UPSTREAM = "10.0.9.9:8080"
SPIKE_CLIENT = "203.0.113.66"

NGINX_CUSTOM = (
    '$remote_addr [$time_local] "$request" $status rt=$request_time '
    'urt="$upstream_response_time" ua="$upstream_addr" host=$host'
)
APACHE_CUSTOM = '%h %l %u %t "%r" %>s %b %D "%{User-Agent}i"'


@dataclass(frozen=True)
class Request:
    client: str
    time: datetime
    method: str
    path: str
    status: int
    size: int
    latency: float
    upstream: str


def requests(
    *, minutes: int = 60, per_minute: int = 40, spike_from: int = 30, spike_to: int = 40
) -> Iterator[Request]:
    for minute in range(minutes):
        for i in range(per_minute):
            when = START + timedelta(minutes=minute, seconds=i * 60 // per_minute)
            client = f"10.1.{i % 7}.{i % 13 + 1}"
            upstream = f"10.0.1.{i % 3 + 1}:8080"
            if spike_from <= minute < spike_to and i % 2 == 0:
                status = 504 if i % 4 == 0 else 502
                yield Request(
                    SPIKE_CLIENT,
                    when,
                    "POST",
                    SPIKE_PATH,
                    status,
                    0,
                    30.0 if status == 504 else 0.002,
                    SPIKE_UPSTREAM,
                )
            elif minute % 7 == 3 and i == 1 and not spike_from <= minute < spike_to:
                yield Request(client, when, "GET", "/api/items/1?x=1", 500, 10, 0.02, upstream)
            else:
                status = 404 if i % 10 == 9 else 200
                yield Request(client, when, "GET", f"/api/items/{i}?page=2", status, 512, 0.02, upstream)


def _clf(when: datetime, zone: timezone = UTC) -> str:
    return when.astimezone(zone).strftime("%d/%b/%Y:%H:%M:%S %z")


def combined(r: Request, zone: timezone = UTC) -> str:
    return (
        f'{r.client} - - [{_clf(r.time, zone)}] "{r.method} {r.path} HTTP/1.1" {r.status} {r.size} '
        f'"https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0"'
    )


def combined_rt(r: Request) -> str:
    return f"{combined(r)} {r.latency:.3f}"


def common(r: Request) -> str:
    return f'{r.client} - frank [{_clf(r.time)}] "{r.method} {r.path} HTTP/1.0" {r.status} {r.size}'


def vhost_combined(r: Request) -> str:
    return f"shop.example:443 {combined(r)}"


def nginx_custom(r: Request) -> str:
    upstreams = f"10.0.1.7:8080, {r.upstream}" if r.status == 502 else r.upstream
    times = f"0.001, {r.latency:.3f}" if r.status == 502 else f"{r.latency:.3f}"
    return (
        f'{r.client} [{_clf(r.time, timezone(timedelta(hours=1)))}] "{r.method} {r.path} HTTP/2.0" '
        f'{r.status} rt={r.latency:.3f} urt="{times}" ua="{upstreams}" host=shop.example'
    )


def apache_custom(r: Request) -> str:
    return (
        f'{r.client} - - [{_clf(r.time)}] "{r.method} {r.path} HTTP/1.1" {r.status} {r.size or "-"} '
        f'{round(r.latency * 1_000_000)} "curl/8.5.0 \\"quoted\\""'
    )


def write(
    path: Path, render: Callable[[Request], str], *, compress: bool = False, **shape: int
) -> Counter[int]:
    """Write a log; returns its status counts."""
    lines = [render(r) for r in requests(**shape)]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return Counter(r.status for r in requests(**shape))


SAMPLES = Path(__file__).parent / "samples"
# Real-shaped error-log lines around the spike (times in the servers' local time).
NGINX_ERRORS = (SAMPLES / "nginx_error.log").read_text()
APACHE_ERRORS = (SAMPLES / "apache_error.log").read_text()
