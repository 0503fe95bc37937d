"""nginx and Apache error logs: parsed, grouped by pattern, lined up with the spike."""

from __future__ import annotations

from pathlib import Path

from bot.logs import analyse_logs
from bot.logs.errorlog import analyse_error_logs, normalize_message, parse_error_line
from tests.logs import logdata


def test_nginx_line_parts() -> None:
    entry = parse_error_line(logdata.NGINX_ERRORS.splitlines()[0])
    assert entry is not None
    assert (entry.server, entry.level) == ("nginx", "error")
    assert entry.message == (
        "upstream timed out (110: Connection timed out) while reading response header from upstream"
    )
    assert entry.upstream == "10.0.9.9:8080"
    assert entry.client == "203.0.113.66"
    assert entry.time == int(logdata.START.timestamp()) + 30 * 60 + 5


def test_apache_line_parts() -> None:
    entry = parse_error_line(logdata.APACHE_ERRORS.splitlines()[0])
    assert entry is not None
    assert (entry.server, entry.level) == ("apache", "error")
    assert entry.client == "203.0.113.66"
    assert entry.upstream == "10.0.9.9:8080"
    assert "referer" not in entry.message and "[client" not in entry.message
    old = parse_error_line(logdata.APACHE_ERRORS.splitlines()[-1])  # Apache 2.2 shape
    assert old is not None and old.client == "10.9.9.9"


def test_patterns_replace_what_varies() -> None:
    assert normalize_message("connect() failed (111: Connection refused) while connecting to upstream") == (
        "connect() failed (<n>: Connection refused) while connecting to upstream"
    )
    assert (
        normalize_message("AH01102: error reading status line from remote server 10.0.9.9:8080")
        == "AH01102: error reading status line from remote server <ip>"
    )
    assert normalize_message('open() "/var/www/x.html" failed') == 'open() "…" failed'
    assert normalize_message("1024 worker_connections are not enough") == (
        "<n> worker_connections are not enough"
    )


def test_grouping_counts_first_and_last(tmp_path: Path) -> None:
    nginx = tmp_path / "error.log"
    nginx.write_text(logdata.NGINX_ERRORS)
    apache = tmp_path / "apache_error.log"
    apache.write_text(logdata.APACHE_ERRORS)
    stats = analyse_error_logs([str(nginx), str(apache)])
    assert stats.lines == 13 and stats.parsed == 12  # the PHP continuation line is not grouped
    groups = {group.pattern: group for group in stats.ranked()}
    timed_out = groups[
        "upstream timed out (<n>: Connection timed out) while reading response header from upstream"
    ]
    assert timed_out.count == 2
    assert timed_out.top_upstreams() == [("10.0.9.9:8080", 2)]
    assert timed_out.last is not None and timed_out.first is not None
    assert timed_out.last - timed_out.first == 64
    refused = groups["connect() failed (<n>: Connection refused) while connecting to upstream"]
    assert refused.count == 2 and len(refused.upstreams) == 2
    ah01102 = [g for g in stats.ranked() if g.code == "AH01102"]
    assert len(ah01102) == 1 and ah01102[0].count == 2
    assert any(g.code == "AH00898" for g in stats.ranked())
    assert any("MaxRequestWorkers" in g.pattern for g in stats.ranked())
    assert any("worker_connections are not enough" in g.pattern for g in stats.ranked())
    assert any(g.pattern.startswith("no live upstreams") for g in stats.ranked())


def test_error_groups_line_up_with_the_spike(tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    logdata.write(access, logdata.combined)
    errors = tmp_path / "error.log"
    errors.write_text(logdata.NGINX_ERRORS)
    report = analyse_logs([str(access)], error_logs=[str(errors)], workers=1)
    assert report.error_log is not None
    rows = {row.pattern: row for row in report.error_log.groups}
    assert rows["<n> worker_connections are not enough"].in_worst_spike == 1
    warn = next(row for row in report.error_log.groups if row.level == "warn")
    assert warn.in_worst_spike == 0  # 11:00, before the spike
    spike = report.spikes[0]
    during = {item.name: item.count for item in spike.error_groups}
    assert (
        during["upstream timed out (<n>: Connection timed out) while reading response header from upstream"]
        == 2
    )
    assert during["connect() failed (<n>: Connection refused) while connecting to upstream"] == 2
    assert report.to_dict()["error_log"]["groups"][0]["first"].startswith("2024-03-05T12:")


def test_error_log_times_take_the_access_logs_utc_offset(tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    logdata.write(access, logdata.nginx_custom)  # written in +0100
    errors = tmp_path / "error.log"
    errors.write_text(logdata.NGINX_ERRORS.replace("2024/03/05 12:", "2024/03/05 13:"))  # local time
    report = analyse_logs([str(access)], log_format=logdata.NGINX_CUSTOM, error_logs=[str(errors)], workers=1)
    assert report.error_log is not None
    assert sum(row.in_worst_spike for row in report.error_log.groups) == 6
