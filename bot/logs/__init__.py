"""Web-server access and error log analysis (``firebell diag logs``, ``/incident diag logs``).

The package is a pipeline with one job per module:

- ``formats``: nginx ``log_format`` / Apache ``LogFormat`` strings and presets → a
  compiled column layout (one regex per layout);
- ``times``: the timestamp forms those layouts capture → epoch minutes;
- ``sources``: files, gzip (detected by magic bytes) and stdin, read in large
  newline-aligned chunks or byte ranges;
- ``parse``: the hot path, a chunk of bytes → counters, without per-line objects
  beyond what the regex returns;
- ``sketch``: bounded counters and a fixed log-scale latency histogram, so
  memory does not grow with the file;
- ``spikes``: pure 5xx spike detection over per-minute counts;
- ``errorlog``: nginx and Apache error logs grouped by message pattern;
- ``report``: the report model, its JSON form and a short text summary;
- ``engine``: runs it all, on several processes for large files.

``analyse_logs`` / ``analyse_logs_async`` are the entry points; callers vet
paths before handing them in (the CLI trusts its operator, Slack does not).
"""

from __future__ import annotations

from bot.logs.engine import analyse_logs, analyse_logs_async
from bot.logs.formats import PRESETS, LogLayout, compile_format
from bot.logs.report import LogReport, summarize

__all__ = [
    "PRESETS",
    "LogLayout",
    "LogReport",
    "analyse_logs",
    "analyse_logs_async",
    "compile_format",
    "summarize",
]
