"""The status chart is a real PNG of the report's minutes."""

from __future__ import annotations

import struct
from pathlib import Path

from bot.logs import analyse_logs
from bot.logs.chart import status_chart_png


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_chart_of_a_log_with_a_spike(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lines = []
    for minute in range(30):
        status = 503 if 10 <= minute < 15 else 200
        for n in range(20):
            when = f"05/Mar/2024:12:{minute:02d}:{n:02d} +0000"
            lines.append(f'10.0.0.{n} - - [{when}] "GET /x HTTP/1.1" {status} 10 "-" "ua"')
    log.write_text("\n".join(lines) + "\n")
    report = analyse_logs([str(log)], workers=1)
    assert report.spikes
    width, height = png_size(status_chart_png(report, "web: requests per minute"))
    assert (width, height) == (900, 320)


def test_chart_of_an_empty_log(tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.write_text("")
    report = analyse_logs([str(log)], workers=1)
    assert png_size(status_chart_png(report, "empty"))[0] == 900
