"""A chunk of access-log bytes → mergeable counters.

``ChunkParser.feed`` sends a chunk through the columnar numpy path
(``vector``) when the layout has a plan for it (``$time_local`` / ``%t``
formats: the presets and most custom ones); every other layout, and every
line the columnar path rejects, goes through the regex path here, which
reads any layout and has the final word on "malformed".

The regex path works per chunk (a few MB, many thousand lines) in a handful
of C-level passes, never a Python loop over lines:

1. one ``findall`` of the layout's regex over the whole chunk gives a tuple of
   the captured columns per line (the only per-line objects);
2. ``zip(*rows)`` turns rows into columns;
3. ``Counter`` over ``zip(minute, status)`` and ``zip(minute, latency)``
   collapses the lines to a few hundred distinct keys, and only those are
   converted in Python (time → minute, latency text → bucket, both cached);
4. 5xx lines are found by joining the 3-byte status column and scanning its
   first digits with ``bytes.find``; only they get per-line Python work
   (path, upstream, client), which is what an incident is about.

Lines the regex does not match are counted as malformed and skipped. The
cyclic garbage collector is paused while a chunk is parsed: ``findall``
creates tuples by the hundred thousand and none of them form cycles, so the
collector would only re-scan them over and over.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from bot.logs.counts import (
    CLIENT_KEEP,
    FAIL_KEEP,
    SAMPLE_CHARS,
    SAMPLE_LIMIT,
    Partial,
    latency_seconds,
    request_path,
    split_list,
)
from bot.logs.formats import CLIENT, HOST, LATENCY, PATH, REQUEST, STATUS, TIME, TZ, UPSTREAM, LogLayout
from bot.logs.sketch import add_bounded, bucket_of, prune
from bot.logs.sources import CHUNK_SIZE, iter_range
from bot.logs.times import full_stamp, minute_start, offset_seconds
from bot.logs.vector import VectorParser


def _count_blank(chunk: bytes) -> int:
    if b"\n\n" not in chunk and not chunk.startswith(b"\n"):
        return 0
    lines = chunk.split(b"\n")
    if chunk.endswith(b"\n"):
        lines.pop()
    return sum(1 for line in lines if not line.strip())


class ChunkParser:
    """Parses chunks for one layout, keeping per-process caches of the
    time-key → minute and latency-text → bucket conversions."""

    def __init__(self, layout: LogLayout) -> None:
        self.layout = layout
        self._minutes: dict[tuple[bytes, bytes], int | None] = {}
        self._buckets: dict[bytes, int | None] = {}
        self._time = layout.roles[TIME]
        self._tz = layout.index(TZ)
        self._status = layout.roles[STATUS]
        self._latency = layout.index(LATENCY)
        self._client = layout.index(CLIENT)
        self._request = layout.index(REQUEST)
        self._path = layout.index(PATH)
        self._upstream = layout.index(UPSTREAM)
        self._host = layout.index(HOST)
        self._vector = VectorParser.create(layout)

    def _minute(self, key: bytes, tz: bytes) -> int | None:
        cache_key = (key, tz)
        try:
            return self._minutes[cache_key]
        except KeyError:
            minute = minute_start(self.layout.time_kind, self.layout.time_arg, key, tz)
            self._minutes[cache_key] = minute
            return minute

    def _bucket(self, text: bytes) -> int | None:
        try:
            return self._buckets[text]
        except KeyError:
            seconds = latency_seconds(text, self.layout.latency_scale)
            bucket = None if seconds is None else bucket_of(seconds)
            if len(self._buckets) > 200_000:  # µs-resolution fields: keep the cache bounded
                self._buckets.clear()
            self._buckets[text] = bucket
            return bucket

    def feed(self, chunk: bytes, out: Partial) -> None:
        """Add the lines of ``chunk`` (whole lines; the last may lack ``\\n``) to ``out``."""
        if not chunk:
            return
        if self._vector is None:
            self.feed_regex(chunk, out)
            return
        self._vector.feed(chunk, out, lambda rejected: self.feed_regex(rejected, out))
        self._edges(chunk, out)

    def feed_regex(self, chunk: bytes, out: Partial) -> None:
        """``feed`` by regex: any layout, any line."""
        if not chunk:
            return
        lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        layout = self.layout
        rows = layout.fast.findall(chunk)
        if len(rows) != lines:
            # Blank lines match nothing, so they are only looked for here.
            lines -= _count_blank(chunk)
            if len(rows) != lines:
                rows = layout.strict.findall(chunk)
        out.lines += lines
        bad = lines - len(rows)
        if bad and len(out.samples) < SAMPLE_LIMIT:
            self._collect_samples(chunk, out)
        if rows:
            bad += self._count_rows(rows, out)
            self._edges(chunk, out)
        out.malformed += bad
        out.parsed += lines - bad

    def _count_rows(self, rows: list[tuple[bytes, ...]], out: Partial) -> int:
        """Count matched rows; returns how many had an invalid time."""
        columns = list(zip(*rows, strict=True))
        minutes = columns[self._time]
        statuses = columns[self._status]
        zones = columns[self._tz] if self._tz is not None else None
        uniform = zones is None or zones.count(zones[0]) == len(zones)
        zone = zones[0] if zones else b""
        if zones is not None:
            offset = offset_seconds(zone) if uniform else None
            if offset is not None:
                out.offsets[offset] = out.offsets.get(offset, 0) + len(rows)
        invalid = 0
        status = out.status
        if uniform:
            for (key, code), count in Counter(zip(minutes, statuses, strict=True)).items():
                minute = self._minute(key, zone)
                if minute is None:
                    invalid += count
                    continue
                slot = (minute, int(code))
                status[slot] = status.get(slot, 0) + count
        else:
            assert zones is not None
            for (key, tz, code), count in Counter(zip(minutes, zones, statuses, strict=True)).items():
                minute = self._minute(key, tz)
                if minute is None:
                    invalid += count
                    continue
                slot = (minute, int(code))
                status[slot] = status.get(slot, 0) + count
        if self._latency is not None:
            self._count_latency(minutes, zones if not uniform else None, zone, columns[self._latency], out)
        if self._client is not None:
            add_bounded(out.clients, Counter(columns[self._client]), CLIENT_KEEP)
        firsts = b"".join(statuses)[::3]
        if b"5" in firsts:
            self._failures(rows, firsts, zones, zone, out)
        return invalid

    def _count_latency(
        self,
        minutes: tuple[bytes, ...],
        zones: tuple[bytes, ...] | None,
        zone: bytes,
        values: tuple[bytes, ...],
        out: Partial,
    ) -> None:
        latency = out.latency
        minute_of = self._minute
        cached_minutes = self._minutes
        buckets = self._buckets
        bucket_of_text = self._bucket
        if zones is None:
            pairs: Counter[tuple[bytes, bytes]] = Counter(zip(minutes, values, strict=True))
            # Inlined cache look-ups: this loop runs once per distinct
            # (minute, latency text), which can be thousands per chunk.
            for (key, text), count in pairs.items():
                minute = cached_minutes.get((key, zone), 0) or minute_of(key, zone)
                bucket = buckets.get(text, -1)
                if bucket == -1:
                    bucket = bucket_of_text(text)
                if minute is None or bucket is None:
                    continue
                slot = (minute, bucket)
                latency[slot] = latency.get(slot, 0) + count
        else:
            triples = Counter(zip(minutes, zones, values, strict=True))
            for (key, tz, text), count in triples.items():
                minute = minute_of(key, tz)
                bucket = bucket_of_text(text)
                if minute is None or bucket is None:
                    continue
                slot = (minute, bucket)
                latency[slot] = latency.get(slot, 0) + count

    def _failures(
        self,
        rows: list[tuple[bytes, ...]],
        firsts: bytes,
        zones: tuple[bytes, ...] | None,
        zone: bytes,
        out: Partial,
    ) -> None:
        """Per-minute paths, upstreams, clients and hosts of the 5xx lines."""
        touched: set[int] = set()
        at = firsts.find(b"5")
        while at >= 0:
            row = rows[at]
            minute = self._minute(row[self._time], zones[at] if zones is not None else zone)
            if minute is not None:
                touched.add(minute)
                if self._path is not None:
                    path = row[self._path].split(b"?", 1)[0][:SAMPLE_CHARS]
                elif self._request is not None:
                    path = request_path(row[self._request])
                else:
                    path = b""
                if path:
                    bucket = out.fail_paths.setdefault(minute, {})
                    bucket[path] = bucket.get(path, 0) + 1
                if self._client is not None:
                    bucket = out.fail_clients.setdefault(minute, {})
                    client = row[self._client]
                    bucket[client] = bucket.get(client, 0) + 1
                if self._host is not None:
                    bucket = out.fail_hosts.setdefault(minute, {})
                    host = row[self._host]
                    bucket[host] = bucket.get(host, 0) + 1
                if self._upstream is not None:
                    bucket = out.fail_upstreams.setdefault(minute, {})
                    for upstream in split_list(row[self._upstream]):
                        bucket[upstream] = bucket.get(upstream, 0) + 1
            at = firsts.find(b"5", at + 1)
        for minute in touched:
            for table in (out.fail_paths, out.fail_clients, out.fail_hosts, out.fail_upstreams):
                counts = table.get(minute)
                if counts is not None and len(counts) > 4 * FAIL_KEEP:
                    prune(counts, FAIL_KEEP)

    def _edges(self, chunk: bytes, out: Partial) -> None:
        """First and last time seen, to the second, from the chunk's first and
        last lines (logs are written in time order, give or take a request)."""
        layout = self.layout
        first = layout.stamp.search(chunk)
        end = len(chunk) - 1 if chunk.endswith(b"\n") else len(chunk)
        last = layout.stamp.match(chunk, chunk.rfind(b"\n", 0, end) + 1)
        for match in (first, last):
            if match is None:
                continue
            seconds = full_stamp(layout.time_kind, layout.time_arg, match.group(1))
            if seconds is None:
                continue
            if out.first is None or seconds < out.first:
                out.first = seconds
            if out.last is None or seconds > out.last:
                out.last = seconds

    def _collect_samples(self, chunk: bytes, out: Partial) -> None:
        match = self.layout.strict.match
        for line in chunk.split(b"\n"):
            if line.strip() and match(line) is None:
                out.samples.append(line[:SAMPLE_CHARS].decode("utf-8", "replace"))
                if len(out.samples) >= SAMPLE_LIMIT:
                    return


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic GC (see the module docstring), restoring its state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_PARSERS: dict[tuple[str, str], ChunkParser] = {}


def parser_for(layout: LogLayout) -> ChunkParser:
    """This process's parser for ``layout`` (its caches live as long as the process)."""
    key = (layout.name, layout.text)
    parser = _PARSERS.get(key)
    if parser is None:
        parser = _PARSERS[key] = ChunkParser(layout)
    return parser


def parse_range(layout: LogLayout, path: str, start: int, end: int, chunk_size: int = CHUNK_SIZE) -> Partial:
    """Worker entry point: the lines of ``path`` starting in ``[start, end)``."""
    parser = parser_for(layout)
    out = Partial()
    with collector_paused():
        for chunk in iter_range(path, start, end, chunk_size):
            parser.feed(chunk, out)
    return out


def parse_chunk(layout: LogLayout, chunk: bytes) -> Partial:
    """Worker entry point: one chunk read by the parent (gzip, stdin)."""
    out = Partial()
    with collector_paused():
        parser_for(layout).feed(chunk, out)
    return out
