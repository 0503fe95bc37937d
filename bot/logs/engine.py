"""Runs an analysis: sources → chunks → counts (on several processes) → report.

Large plain files are cut into byte ranges that worker processes read and
parse themselves, so the parent only merges small count tables. gzip and
stdin can only be read front to back: the parent decompresses and reads, and
hands chunks to the workers, with a bounded number in flight so memory stays
flat. Small inputs are parsed in-process; starting workers would cost more
than it saves.

Workers are forked when the caller is single-threaded (the CLI): it is the
cheapest start. A threaded caller (the bot, through ``asyncio.to_thread``)
gets ``forkserver`` workers, since forking a process with running threads can
copy a held lock into the child.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack

from bot.errors import UserError
from bot.logs.counts import Partial
from bot.logs.errorlog import ErrorLogStats, analyse_error_logs
from bot.logs.formats import LogLayout, compile_format, detect_format
from bot.logs.parse import collector_paused, parse_chunk, parse_range, parser_for
from bot.logs.report import LogReport, build_report
from bot.logs.sources import CHUNK_SIZE, STDIN, Source, inspect_source, iter_chunks, open_stream, split_ranges
from bot.logs.spikes import SpikeConfig

PARALLEL_MIN_BYTES = 32 << 20  # below this a plain file is parsed in-process
_SAMPLE_BYTES = 64 << 10
AUTO = "auto"


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


class _Pool:
    """A process pool started on first use, with merged results."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._pending: set[Future[Partial]] = set()
        self.total = Partial()

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            method = "fork" if threading.active_count() == 1 else "forkserver"
            context = multiprocessing.get_context(method)
            if method == "forkserver":
                context.set_forkserver_preload(["bot.logs.parse"])
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self._executor

    def submit_range(self, layout: LogLayout, path: str, start: int, end: int, chunk_size: int) -> None:
        self._pending.add(self._start().submit(parse_range, layout, path, start, end, chunk_size))

    def submit_chunk(self, layout: LogLayout, chunk: bytes) -> None:
        # Bounded: a slow pool must not let the reader pile chunks up in memory.
        while len(self._pending) >= 2 * self.workers:
            self._collect(FIRST_COMPLETED)
        self._pending.add(self._start().submit(parse_chunk, layout, chunk))

    def _collect(self, how: str) -> None:
        done, self._pending = wait(self._pending, return_when=how)
        for future in done:
            self.total.merge(future.result())

    def finish(self) -> Partial:
        if self._pending:
            self._collect("ALL_COMPLETED")
        return self.total

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _resolve_layout(log_format: str | None, first: Source, head: bytes) -> LogLayout:
    if log_format is not None and log_format.strip().lower() != AUTO:
        return compile_format(log_format)
    if not head.strip():  # an empty log is an empty report, whatever its format
        return compile_format("combined")
    layout = detect_format(head)
    if layout is None:
        line = head.split(b"\n", 1)[0][:200].decode("utf-8", "replace")
        raise UserError(
            f"{first.name}: not a combined, common or vhost_combined log; give the format "
            f"(--format '<log_format string>'). First line: {line!r}"
        )
    return layout


def _head(source: Source) -> bytes:
    """The first bytes of a file (decompressed), for format detection."""
    with open_stream(source) as stream:
        return stream.read(_SAMPLE_BYTES)


def _stream_chunks(source: Source, chunk_size: int, stack: ExitStack) -> Iterator[bytes]:
    stream = stack.enter_context(open_stream(source))
    return iter_chunks(stream, source.name, chunk_size)


def analyse_logs(
    paths: Sequence[str],
    *,
    log_format: str | None = None,
    error_logs: Sequence[str] = (),
    workers: int | None = None,
    spike_config: SpikeConfig | None = None,
    chunk_size: int = CHUNK_SIZE,
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
) -> LogReport:
    """Analyse access logs (and optionally error logs) and return the report.

    ``paths`` are used as given (``-`` is stdin): vet them before calling.
    ``log_format`` is a preset name, an nginx/Apache format string, or
    None/``auto`` to recognise a preset from the first lines. Raises
    ``UserError`` for an unreadable file, a bad format string or a log that
    no line of matches.
    """
    if not paths:
        raise UserError("no access log given")
    if [*paths, *error_logs].count(STDIN) > 1:
        raise UserError("standard input (-) can be read only once")
    workers = default_workers() if workers is None else max(1, workers)
    sources = [inspect_source(path) for path in paths]
    for path in error_logs:
        inspect_source(path)  # fail before the long part, not after it
    with ExitStack() as stack:
        layout: LogLayout | None = None
        if sources[0].name != STDIN:
            layout = _resolve_layout(log_format, sources[0], _head(sources[0]))
        pool = _Pool(workers)
        stack.callback(pool.close)
        local = Partial()
        with collector_paused():
            for source in sources:
                if source.splittable and workers > 1 and (source.size or 0) >= parallel_min_bytes:
                    assert layout is not None and source.size is not None
                    for start, end in split_ranges(source.size, workers * 4):
                        pool.submit_range(layout, source.name, start, end, chunk_size)
                    continue
                chunks: Iterable[bytes] = _stream_chunks(source, chunk_size, stack)
                if layout is None:  # stdin first: recognise the format from its first chunk
                    iterator = iter(chunks)
                    first = next(iterator, b"")
                    layout = _resolve_layout(log_format, source, first[:_SAMPLE_BYTES])
                    chunks = itertools.chain([first], iterator)
                parser = parser_for(layout)
                for index, chunk in enumerate(chunks):
                    # The first chunk of a stream stays here: most streams
                    # (small files, short pipes) have only one.
                    if index == 0 or workers == 1:
                        parser.feed(chunk, local)
                    else:
                        pool.submit_chunk(layout, chunk)
            total = pool.finish()
        total.merge(local)
    assert layout is not None
    if total.lines and not total.parsed:
        sample = total.samples[0] if total.samples else ""
        raise UserError(
            f"no line matches the {layout.name} log format ({layout.text}); first line: {sample!r}"
        )
    errors: ErrorLogStats | None = None
    if error_logs:
        errors = analyse_error_logs(error_logs, offset=_dominant_offset(total))
    return build_report(
        total,
        sources=[source.name for source in sources],
        format_name=layout.name,
        format_text=layout.text,
        latency_field=layout.latency_field,
        errors=errors,
        spike_config=spike_config,
    )


def _dominant_offset(partial: Partial) -> int:
    """The access logs' most common UTC offset: error logs carry none, and
    the same server writes both."""
    return max(partial.offsets.items(), key=lambda item: item[1])[0] if partial.offsets else 0


async def analyse_logs_async(
    paths: Sequence[str],
    *,
    log_format: str | None = None,
    error_logs: Sequence[str] = (),
    workers: int | None = None,
    spike_config: SpikeConfig | None = None,
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
) -> LogReport:
    """``analyse_logs`` off the event loop (it reads files and waits on processes)."""
    return await asyncio.to_thread(
        analyse_logs,
        paths,
        log_format=log_format,
        error_logs=error_logs,
        workers=workers,
        spike_config=spike_config,
        parallel_min_bytes=parallel_min_bytes,
    )
