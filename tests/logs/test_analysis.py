"""The engine on generated logs: every format, gzip, several files, bad lines, both parsers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.errors import UserError
from bot.logs import analyse_logs, summarize
from bot.logs.counts import Partial
from bot.logs.formats import compile_format
from bot.logs.parse import ChunkParser
from bot.logs.report import LogReport
from tests.logs import logdata

SPIKE_START = "2024-03-05T12:30:00Z"
SPIKE_END = "2024-03-05T12:40:00Z"


def assert_known_spike(report: LogReport, expected: dict[int, int], *, upstream: bool = False) -> None:
    assert report.malformed == 0
    assert report.parsed == sum(expected.values())
    assert report.status == dict(sorted(expected.items()))
    [spike] = report.spikes
    assert report.worst == 0
    data = spike.to_dict()
    assert (data["start"], data["end"]) == (SPIKE_START, SPIKE_END)
    assert data["codes"] == {"502": 100, "504": 100}
    assert data["peak_ratio"] > 10
    assert spike.top_paths[0].name == logdata.SPIKE_PATH
    assert spike.top_paths[0].count == 200
    assert spike.top_clients[0].name == logdata.SPIKE_CLIENT
    if upstream:
        assert spike.top_upstreams[0].name == logdata.SPIKE_UPSTREAM
        assert spike.top_upstreams[0].count == 200
    assert report.top_5xx_paths[0].name == logdata.SPIKE_PATH
    assert report.codes_5xx[502].first == logdata.START.timestamp() + 30 * 60


@pytest.mark.parametrize(
    ("render", "log_format"),
    [
        (logdata.combined, "combined"),
        (logdata.combined, None),
        (logdata.common, "common"),
        (logdata.vhost_combined, "vhost_combined"),
        (logdata.combined_rt, "combined_rt"),
    ],
)
def test_presets_find_the_spike(
    tmp_path: Path, render: Callable[[logdata.Request], str], log_format: str | None
) -> None:
    path = tmp_path / "access.log"
    expected = logdata.write(path, render)
    report = analyse_logs([str(path)], log_format=log_format, workers=1)
    assert_known_spike(report, expected)
    assert report.first == logdata.START.timestamp()
    assert report.to_dict()["last"] == "2024-03-05T12:59:58Z"


def test_nginx_custom_format_with_upstreams_and_timezone(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    expected = logdata.write(path, logdata.nginx_custom)
    report = analyse_logs([str(path)], log_format=logdata.NGINX_CUSTOM, workers=1)
    assert_known_spike(report, expected, upstream=True)
    assert report.to_dict()["first"] == "2024-03-05T12:00:00Z"  # written as 13:00 +0100
    latency = report.latency
    assert latency is not None and latency.field == "$request_time"
    assert latency.p50 == pytest.approx(0.02, rel=0.03)
    spike_latency = report.spikes[0].latency
    assert spike_latency is not None and spike_latency.p99 == pytest.approx(30.0, rel=0.03)


def test_apache_custom_format_with_microseconds_and_escaped_quotes(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    expected = logdata.write(path, logdata.apache_custom)
    report = analyse_logs([str(path)], log_format=logdata.APACHE_CUSTOM, workers=1)
    assert_known_spike(report, expected)
    assert report.latency is not None and report.latency.field == "%D"
    assert report.latency.p99 == pytest.approx(30.0, rel=0.03)  # 100 of 2,400 took 30 s


def test_gzip_and_several_files_add_up(tmp_path: Path) -> None:
    first, second = tmp_path / "access.log.1.gz", tmp_path / "access.log"
    expected = logdata.write(first, logdata.combined_rt, compress=True, minutes=30, spike_to=30)
    rest = logdata.write(second, logdata.combined_rt)
    report = analyse_logs([str(first), str(second)], workers=1)
    assert report.parsed == sum(expected.values()) + sum(rest.values())
    assert report.status[502] == 100
    assert len(report.spikes) == 1


def test_gzip_is_recognised_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    path = tmp_path / "access.log"  # no .gz
    expected = logdata.write(path, logdata.combined, compress=True)
    assert analyse_logs([str(path)], workers=1).parsed == sum(expected.values())


def test_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    expected = logdata.write(path, logdata.combined_rt)
    lines = path.read_text().splitlines()
    lines[100] = "garbage that is not a log line"
    lines[200] = lines[200][:40]  # truncated
    lines[300] = lines[300].replace("05/Mar/2024", "32/Mar/2024")  # impossible date
    lines.insert(400, "")  # blank lines are neither requests nor malformed
    path.write_text("\n".join(lines) + "\n")
    report = analyse_logs([str(path)], workers=1)
    assert report.malformed == 3
    assert report.parsed == sum(expected.values()) - 3
    assert "garbage that is not a log line" in report.malformed_samples
    assert report.lines == report.parsed + report.malformed


def test_nothing_matching_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logdata.write(path, logdata.combined)
    with pytest.raises(UserError, match="no line matches the custom log format"):
        analyse_logs([str(path)], log_format='$remote_addr "$request" [$time_local] $status', workers=1)


def test_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="No such file or directory"):
        analyse_logs([str(tmp_path / "missing.log")])
    with pytest.raises(UserError, match="is a directory"):
        analyse_logs([str(tmp_path)])
    broken = tmp_path / "broken.gz"
    logdata.write(broken, logdata.combined, compress=True)
    broken.write_bytes(broken.read_bytes()[:2000])  # rotated mid-write
    with pytest.raises(UserError, match="gzip"):
        analyse_logs([str(broken)], log_format="combined", workers=1)


def test_parallel_byte_ranges_equal_a_single_pass(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logdata.write(path, logdata.nginx_custom, minutes=120, per_minute=100, spike_from=60, spike_to=70)
    one = analyse_logs([str(path)], log_format=logdata.NGINX_CUSTOM, workers=1).to_dict()
    many = analyse_logs(
        [str(path)], log_format=logdata.NGINX_CUSTOM, workers=3, chunk_size=64 << 10, parallel_min_bytes=0
    ).to_dict()
    assert many == one


def test_parallel_stream_chunks_equal_a_single_pass(tmp_path: Path) -> None:
    path = tmp_path / "access.log.gz"
    logdata.write(path, logdata.combined_rt, compress=True, minutes=90, per_minute=100)
    one = analyse_logs([str(path)], workers=1).to_dict()
    many = analyse_logs([str(path)], workers=2, chunk_size=64 << 10).to_dict()
    assert many == one


@pytest.mark.parametrize(
    ("render", "log_format"),
    [
        (logdata.combined, "combined"),
        (logdata.combined_rt, "combined"),  # trailing fields on a tolerant preset
        (logdata.common, "common"),
        (logdata.vhost_combined, "vhost_combined"),
        (logdata.nginx_custom, logdata.NGINX_CUSTOM),
        (logdata.combined_rt, "combined_rt"),
    ],
)
def test_columnar_and_regex_parsers_agree(render: Callable[[logdata.Request], str], log_format: str) -> None:
    text = "\n".join(render(r) for r in logdata.requests(minutes=20, spike_from=5, spike_to=9)).encode()
    broken = text.replace(b'"GET /api/items/3', b'"GET /api/"items/3', 5).replace(b" 200 ", b" 2x0 ", 3)
    for data in (text, broken, text + b"\n\nshort line\n" + text[:5000]):
        layout = compile_format(log_format)
        columnar, regex = Partial(), Partial()
        ChunkParser(layout).feed(data, columnar)
        ChunkParser(layout).feed_regex(data, regex)
        assert columnar.lines == regex.lines and columnar.malformed == regex.malformed
        assert columnar.status == regex.status
        assert columnar.latency == regex.latency
        assert columnar.clients == regex.clients
        assert columnar.fail_paths == regex.fail_paths
        assert columnar.fail_upstreams == regex.fail_upstreams
        assert (columnar.first, columnar.last) == (regex.first, regex.last)
        assert columnar.offsets == regex.offsets


def test_text_summary_and_json_keys(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logdata.write(path, logdata.nginx_custom)
    report = analyse_logs([str(path)], log_format=logdata.NGINX_CUSTOM, workers=1)
    data = report.to_dict()
    for key in ("lines", "status", "spikes", "top_5xx_paths", "top_clients", "latency"):
        assert key in data
    assert set(data["latency"]) >= {"p50", "p95", "p99"}
    assert set(data["spikes"][0]) >= {"start", "end", "peak_ratio", "codes"}
    text = summarize(report)
    assert "5xx spike 12:30–12:40 UTC (10 min)" in text
    assert "502 ×100 · 504 ×100" in text
    assert "/api/checkout (200)" in text
    assert "10.0.9.9:8080 (200)" in text


async def test_async_entry_point_runs_off_the_loop_with_worker_processes(tmp_path: Path) -> None:
    # From a thread (as the bot calls it) the pool uses forkserver, not fork.
    from bot.logs import analyse_logs_async

    path = tmp_path / "access.log"
    expected = logdata.write(path, logdata.combined_rt, minutes=90, per_minute=100)
    report = await analyse_logs_async([str(path)], workers=2, parallel_min_bytes=0)
    assert report.parsed == sum(expected.values())
    assert len(report.spikes) == 1


def test_an_empty_log_is_an_empty_report(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"")
    report = analyse_logs([str(path)], workers=1)
    assert (report.lines, report.parsed, report.spikes, report.latency) == (0, 0, [], None)
    assert report.to_dict()["first"] is None
    assert "0 requests" in summarize(report)
