"""``firebell diag logs`` as an operator runs it: a real process, stdin, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.logs import logdata

FIREBELL = [sys.executable, "-c", "from handlers.cli import main; main()"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "COLUMNS": "200"}  # rich folds long cells to the terminal's width
    return subprocess.run(
        [*FIREBELL, "diag", "logs", *args], input=stdin, capture_output=True, timeout=60, env=env
    )


def test_stdin_json(tmp_path: Path) -> None:
    data = "\n".join(logdata.combined_rt(r) for r in logdata.requests()).encode()
    done = run("--json", "-", stdin=data)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["requests"] == 2400
    assert report["format"]["name"] == "combined_rt"
    assert report["spikes"][0]["start"] == "2024-03-05T12:30:00Z"
    assert report["spikes"][0]["codes"] == {"502": 100, "504": 100}
    assert report["latency"]["p99"] > 25


def test_gzip_on_stdin_with_a_custom_format(tmp_path: Path) -> None:
    path = tmp_path / "access.log.gz"
    logdata.write(path, logdata.nginx_custom, compress=True)
    done = run("--json", "--format", logdata.NGINX_CUSTOM, "-", stdin=path.read_bytes())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["spikes"][0]["top_upstreams"][0]["upstream"] == logdata.SPIKE_UPSTREAM


def test_tables_for_people(tmp_path: Path) -> None:
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    logdata.write(access, logdata.combined_rt)
    errors.write_text(logdata.NGINX_ERRORS)
    done = run(str(access), "--error-log", str(errors))
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    for text in ("5xx spikes", "Worst spike", "/api/checkout", "Latency", "upstream timed out"):
        assert text in out


def test_wrong_format_string_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logdata.write(path, logdata.combined)
    done = run("--format", '$remote_addr [$time_local] "$request" $status $bogus', str(path))
    assert done.returncode == 2
    assert done.stderr.decode().strip() == "firebell: unknown nginx log_format variable $bogus"
    assert done.stdout == b""


def test_unreadable_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run(str(tmp_path / "nope.log"))
    assert done.returncode == 2
    assert done.stderr.decode().strip().endswith("nope.log: No such file or directory")
    assert len(done.stderr.decode().strip().splitlines()) == 1
