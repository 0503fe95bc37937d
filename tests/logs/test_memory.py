"""Memory stays flat in the file size: the file is streamed, never loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.logs import logdata

PROBE = """
import resource, sys
from bot.logs import analyse_logs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = analyse_logs([sys.argv[1]], workers=1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(report.parsed, (after - before) // 1024)
"""


def _grow(path: Path, megabytes: int) -> None:
    """Repeat a generated hour of traffic until the file has ``megabytes``."""
    block = ("\n".join(logdata.combined_rt(r) for r in logdata.requests()) + "\n").encode()
    with open(path, "wb") as out:
        for _ in range(megabytes * (1 << 20) // len(block) + 1):
            out.write(block)


def _growth_mb(path: Path) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, timeout=120, check=True
    )
    parsed, growth = done.stdout.split()
    return int(parsed), int(growth)


def test_rss_growth_does_not_follow_the_file_size(tmp_path: Path) -> None:
    small, big = tmp_path / "small.log", tmp_path / "big.log"
    _grow(small, 8)
    _grow(big, 64)
    small_lines, small_growth = _growth_mb(small)
    big_lines, big_growth = _growth_mb(big)
    assert big_lines > 7 * small_lines
    # Eight times the data may cost a few MB more (counters, caches), never
    # anything like the 56 MB more that holding the file would.
    assert big_growth < 40, (small_growth, big_growth)
    assert big_growth - small_growth < 12, (small_growth, big_growth)
