"""Columnar fast path: a whole chunk is split into columns with numpy, no per-line objects.

The regex path (``parse``) creates a tuple and a bytes object per captured
field per line; that, not matching, is what Python spends its time on. Here
the chunk is one ``uint8`` array and every step works on all lines at once:

1. newline and quote positions (``flatnonzero``) give each line's start, end
   and quotes; a line whose quote count differs from the format's is set
   aside;
2. the format's quote-delimited segments are walked from their boundaries
   over literals (checked byte by byte), fixed-width fields (status, time)
   and space-terminated tokens (found in a fixed window with ``argmax``), so
   each captured field gets start/end arrays;
3. status is decoded arithmetically; ``$time_local`` without its seconds,
   latency and client tokens are packed into 64-bit integers (the bytes
   themselves, or a hash of them), so only values never seen before are
   decoded in Python (``_KeyTable``), and clients are counted by sorting;
4. counts per (minute, status) and (minute, latency bucket) come from
   ``bincount``; 5xx lines alone are visited one by one, for their path,
   client and upstream.

Any line that fails a check (odd quotes, a literal that does not match, a
token longer than the window, an impossible date…) is handed to the regex
path, which decides between "parsed" and "malformed". So this path only has
to be right about the lines it accepts, and it accepts only lines that the
regex would read the same way.

Only ``$time_local`` / ``%t`` layouts get a plan; others use the regex path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bot.logs.counts import CLIENT_KEEP, FAIL_KEEP, Partial, latency_seconds, request_path, split_list
from bot.logs.formats import (
    CLF,
    CLIENT,
    HOST,
    LATENCY,
    PATH,
    REQUEST,
    STATUS,
    TIME,
    UPSTREAM,
    FormatField,
    FormatLiteral,
    LogLayout,
)
from bot.logs.sketch import add_bounded, bucket_of, prune
from bot.logs.times import minute_start, offset_seconds

_PAD = 64  # bytes of "\n" around the chunk, so every window stays in bounds
_SCAN = 64  # longest token found by scanning (longer ones go to the regex path)
_LATENCY_BUCKETS = 512
_CHUNK_CLIENTS = 256  # clients per chunk turned into text (see _clients)
_MONTHS = np.array(
    sorted(
        (ord(name[0]) << 16 | ord(name[1]) << 8 | ord(name[2]), number)
        for number, name in enumerate(
            ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
        )
    ),
    dtype=np.int64,
)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
# Offsets of the digits in "05/Mar/2024:12:00:00 +0000".
_CLF_DIGITS = np.array([0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19, 22, 23, 24, 25], dtype=np.intp)
_CLF_SEPARATORS = ((2, ord("/")), (6, ord("/")), (11, ord(":")), (14, ord(":")), (17, ord(":")), (20, 32))
_CLF_WIDTH = 26
# In the word at byte 16 of "05/Mar/2024:12:00:00 +0000", byte 17 is the
# colon before the seconds (which stay out of the minute key).
_COLON_MASK = np.uint64(0xFF00)
_COLON = np.uint64(ord(":") << 8)
_ZONE_MASK = np.uint64(0xFFFFFFFFFFFF0000)  # bytes 20-25: " +0000" (and 2 bytes beyond)
_CLF_TEXT = re.compile(rb"\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}")
_HASH_ZONE = np.uint64(0xFF51AFD7ED558CCD)
_HASH_LO = np.uint64(0x9E3779B97F4A7C15)
_HASH_HI = np.uint64(0xC2B2AE3D27D4EB4F)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Fallback = Callable[[bytes], None]


@dataclass(frozen=True)
class _Step:
    """One item of a segment: a literal, a fixed-width field or a token."""

    kind: str  # lit | fixed | token | free
    text: bytes = b""
    width: int = 0
    role: str | None = None
    inner: int = 0  # for %t: the time starts one byte in, after "["


@dataclass(frozen=True)
class VectorPlan:
    quotes: int
    tolerant: bool
    segments: tuple[tuple[_Step, ...], ...]
    fields: dict[str, tuple[int, int]]  # role → (segment, step index)


def plan_for(layout: LogLayout) -> VectorPlan | None:
    """A plan for ``layout``, or None when it needs the regex path."""
    if layout.time_kind != CLF:
        return None
    captured = set(layout.captured)
    segments: list[list[_Step]] = [[]]
    for at, item in enumerate(layout.items):
        if isinstance(item, FormatLiteral):
            pieces = item.text.encode("latin-1", "replace").split(b'"')
            for number, piece in enumerate(pieces):
                if number:
                    segments.append([])
                if piece:
                    segments[-1].append(_Step("lit", piece, len(piece)))
            continue
        step = _field_step(item, at in captured)
        if step is None:
            return None
        segments[-1].append(step)
    fields: dict[str, tuple[int, int]] = {}
    for number, steps in enumerate(segments):
        for index, step in enumerate(steps):
            if step.role is not None:
                fields[step.role] = (number, index)
    plan = VectorPlan(len(segments) - 1, layout.tolerant, tuple(tuple(s) for s in segments), fields)
    return plan if all(_locatable(plan, role) for role in fields) else None


def _field_step(item: FormatField, captured: bool) -> _Step | None:
    role = item.role if captured else None
    if item.kind == "time":
        if item.time_kind != CLF:
            return None
        bracketed = item.regex.startswith(r"\[")
        return _Step("fixed", width=_CLF_WIDTH + (2 if bracketed else 0), role=role, inner=int(bracketed))
    if item.kind == "status":
        return _Step("fixed", width=3, role=role)
    if item.kind in ("token", "latency"):
        return _Step("token", role=role)
    return _Step("free", role=role)


def _walkable_left(steps: tuple[_Step, ...], upto: int) -> bool:
    for index in range(upto):
        step = steps[index]
        if step.kind == "free":
            return False
        if step.kind == "token" and not _terminator_after(steps, index):
            return False
    return True


def _walkable_right(steps: tuple[_Step, ...], after: int) -> bool:
    for index in range(len(steps) - 1, after, -1):
        step = steps[index]
        if step.kind == "free":
            return False
        if step.kind == "token" and not _terminator_before(steps, index):
            return False
    return True


def _terminator_after(steps: tuple[_Step, ...], index: int) -> int | None:
    """The byte that ends a token scanned left to right (None at segment end)."""
    if index + 1 < len(steps):
        following = steps[index + 1]
        return following.text[0] if following.kind == "lit" else None
    return -1  # the segment boundary: quote or line end


def _terminator_before(steps: tuple[_Step, ...], index: int) -> int | None:
    if index > 0:
        previous = steps[index - 1]
        return previous.text[-1] if previous.kind == "lit" else None
    return -1


def _locatable(plan: VectorPlan, role: str) -> bool:
    segment, index = plan.fields[role]
    steps = plan.segments[segment]
    open_right = plan.tolerant and segment == plan.quotes
    left = _walkable_left(steps, index)
    right = not open_right and _walkable_right(steps, index)
    step = steps[index]
    if left and right:
        return True
    if step.kind == "fixed":
        return left or right
    if step.kind == "token":
        return (left and _terminator_after(steps, index) is not None) or (
            right and _terminator_before(steps, index) is not None
        )
    return False


_ONES = np.uint64(0x0101010101010101)
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


def _matching_bytes(words: npt.NDArray[np.uint64], stops: tuple[int, ...]) -> npt.NDArray[np.uint64]:
    """0x80 in every byte of ``words`` that equals one of ``stops``, 0 elsewhere
    (the exact SWAR zero-byte test, eight bytes per operation)."""
    found = np.zeros(len(words), dtype=np.uint64)
    for stop in stops:
        x = words ^ (_ONES * np.uint64(stop))
        found |= ~(((x & _LOW7) + _LOW7) | x | _LOW7)
    return found


def _lowest_byte(mask: npt.NDArray[np.uint64]) -> IntArray:
    """Index (0-7) of the lowest flagged byte; ``mask`` must be non-zero."""
    lowest = mask & (~mask + np.uint64(1))
    return np.log2(lowest.astype(np.float64)).astype(np.int64) >> 3


def _highest_byte(mask: npt.NDArray[np.uint64]) -> IntArray:
    return np.log2(mask.astype(np.float64)).astype(np.int64) >> 3


class _Scratch:
    """Buffers reused from chunk to chunk: a fresh multi-megabyte allocation
    per chunk costs more in page faults than the parsing itself."""

    def __init__(self) -> None:
        self.bytes = bytearray()
        self.flags = np.empty(0, dtype=bool)

    def load(self, chunk: bytes) -> int:
        size = len(chunk) + 2 * _PAD
        if len(self.bytes) < size:
            # Headroom: chunks differ by a line's length, and reallocating
            # for each would bring the page faults back.
            room = size + size // 4
            self.bytes = bytearray(b"\n" * room)
            self.flags = np.empty(room, dtype=bool)
        self.bytes[:_PAD] = b"\n" * _PAD
        self.bytes[_PAD : _PAD + len(chunk)] = chunk
        self.bytes[_PAD + len(chunk) : size] = b"\n" * _PAD
        return size


class _Lines:
    """The arrays of one chunk; positions are in the padded buffer (``_PAD`` on)."""

    def __init__(self, chunk: bytes, scratch: _Scratch) -> None:
        self.chunk = chunk
        size = scratch.load(chunk)
        self.a = np.frombuffer(scratch.bytes, dtype=np.uint8, count=size)
        self._flags = scratch.flags[:size]
        ends = self.positions(10)
        ends = ends[(ends >= _PAD) & (ends < _PAD + len(chunk))]
        if chunk and not chunk.endswith(b"\n"):
            ends = np.append(ends, _PAD + len(chunk))
        self.newlines: IntArray = ends.astype(np.int64)
        starts = np.empty(len(ends), dtype=np.int64)
        if len(ends):
            starts[0] = _PAD
            starts[1:] = ends[:-1] + 1
        self.starts: IntArray = starts
        # The 8 bytes starting at each position, as one little-endian integer
        # (an overlapping view: no copy).
        self.words: npt.NDArray[np.uint64] = np.ndarray(
            (size - 7,), dtype="<u8", buffer=scratch.bytes, offset=0, strides=(1,)
        )

    def positions(self, byte: int) -> IntArray:
        np.equal(self.a, byte, out=self._flags)
        found: IntArray = np.flatnonzero(self._flags)
        return found

    def text(self, begin: int, end: int) -> bytes:
        return self.chunk[begin - _PAD : end - _PAD]

    def scan_right(self, start: IntArray, stops: tuple[int, ...]) -> tuple[IntArray, BoolArray]:
        """First position ≥ start holding one of ``stops``, within ``_SCAN`` bytes."""
        position = np.zeros(len(start), dtype=np.int64)
        found = np.zeros(len(start), dtype=bool)
        active = np.arange(len(start))
        for step in range(0, _SCAN, 8):
            base = start[active] + step
            mask = _matching_bytes(self.words[base], stops)
            hit = mask != 0
            rows = active[hit]
            position[rows] = base[hit] + _lowest_byte(mask[hit])
            found[rows] = True
            active = active[~hit]
            if not len(active):
                break
        return position, found

    def scan_left(self, end: IntArray, stops: tuple[int, ...]) -> tuple[IntArray, BoolArray]:
        """One past the last position < end holding one of ``stops``, within ``_SCAN`` bytes."""
        position = np.zeros(len(end), dtype=np.int64)
        found = np.zeros(len(end), dtype=bool)
        active = np.arange(len(end))
        for step in range(8, _SCAN + 8, 8):
            base = end[active] - step
            mask = _matching_bytes(self.words[base], stops)
            hit = mask != 0
            rows = active[hit]
            position[rows] = base[hit] + _highest_byte(mask[hit]) + 1
            found[rows] = True
            active = active[~hit]
            if not len(active):
                break
        return position, found


class _KeyTable:
    """Values for 64-bit keys decoded before, found with one ``searchsorted``
    per chunk; only keys never seen are decoded in Python."""

    def __init__(self, width: int, limit: int = 200_000) -> None:
        self.keys = np.empty(0, dtype=np.uint64)
        self.values = np.empty((0, width), dtype=np.int64)
        self.limit = limit

    def find(self, keys: npt.NDArray[np.uint64]) -> tuple[IntArray, BoolArray]:
        if not len(self.keys):
            return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
        slot = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return slot, self.keys[slot] == keys

    def lookup(
        self, keys: npt.NDArray[np.uint64], decode: Callable[[int], tuple[int, ...]]
    ) -> npt.NDArray[np.int64]:
        """The value rows for ``keys``; ``decode(row)`` gives the values of a
        new key from the line at ``row``."""
        slot, known = self.find(keys)
        if not known.all():
            missing = np.flatnonzero(~known)
            fresh, first = np.unique(keys[missing], return_index=True)
            values = np.array([decode(int(row)) for row in missing[first].tolist()], dtype=np.int64)
            if len(self.keys) + len(fresh) > self.limit:  # µs-resolution fields: stay bounded
                self.keys, self.values = self.keys[:0], self.values[:0]
            merged = np.concatenate([self.keys, fresh])
            order = np.argsort(merged)
            self.keys = merged[order]
            self.values = np.concatenate([self.values, values.reshape(len(fresh), -1)])[order]
            slot, known = self.find(keys)
        found: npt.NDArray[np.int64] = self.values[slot]
        return found


def _groups(keys: npt.NDArray[np.uint64]) -> tuple[IntArray, IntArray, IntArray]:
    """(a row of each distinct key, count of each, group index of every row).

    ``np.unique`` with ``return_index`` sorts stably, five times slower than
    the default ``argsort`` this needs."""
    order = np.argsort(keys)
    ordered = keys[order]
    fresh = np.empty(len(keys), dtype=bool)
    fresh[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=fresh[1:])
    heads = np.flatnonzero(fresh)
    counts = np.diff(np.append(heads, len(keys)))
    group = np.empty(len(keys), dtype=np.int64)
    group[order] = np.cumsum(fresh) - 1
    return order[heads], counts, group


def _check_literal(lines: _Lines, at: IntArray, text: bytes, good: BoolArray) -> None:
    if len(text) <= 3:  # byte gathers are aligned and cheaper than a word's
        for offset, byte in enumerate(text):
            good &= lines.a[at + offset] == byte
        return
    for offset in range(0, len(text), 8):
        piece = text[offset : offset + 8]
        mask = np.uint64((1 << (8 * len(piece))) - 1)
        good &= (lines.words[at + offset] & mask) == np.uint64(int.from_bytes(piece, "little"))


class VectorParser:
    """Feeds chunks through a ``VectorPlan``; rejected lines go to ``fallback``."""

    def __init__(self, layout: LogLayout, plan: VectorPlan) -> None:
        self.layout = layout
        self.plan = plan
        self._minute_table = _KeyTable(3)
        self._latency_table = _KeyTable(1)
        self._scratch = _Scratch()

    @classmethod
    def create(cls, layout: LogLayout) -> VectorParser | None:
        plan = plan_for(layout)
        return cls(layout, plan) if plan is not None else None

    # --- locating fields ---------------------------------------------------

    def _spans(
        self, lines: _Lines, rows: IntArray, qfirst: IntArray, qcount: IntArray, quotes: IntArray
    ) -> tuple[dict[str, tuple[IntArray, IntArray]], BoolArray]:
        plan = self.plan
        starts = lines.starts[rows]
        ends = lines.newlines[rows]
        ends = ends - (lines.a[ends - 1] == 13)
        good = np.ones(len(rows), dtype=bool)
        spans: dict[str, tuple[IntArray, IntArray]] = {}
        for number, steps in enumerate(plan.segments):
            seg_start = starts if number == 0 else quotes[qfirst + number - 1] + 1
            if number < plan.quotes:
                seg_end = quotes[qfirst + number]
            elif plan.tolerant:
                # Extra quoted fields after the known ones are allowed; the
                # segment then ends at the first extra quote.
                extra = qcount > plan.quotes
                seg_end = np.where(extra, quotes[np.minimum(qfirst + number, len(quotes) - 1)], ends)
            else:
                seg_end = ends
            self._walk(lines, steps, number, seg_start, seg_end, ends, good, spans)
        return spans, good

    def _walk(
        self,
        lines: _Lines,
        steps: tuple[_Step, ...],
        number: int,
        seg_start: IntArray,
        seg_end: IntArray,
        ends: IntArray,
        good: BoolArray,
        spans: dict[str, tuple[IntArray, IntArray]],
    ) -> None:
        """Locate the segment's fields: from the left as far as possible, then
        from the right for what is left (a free-text field in between)."""
        open_right = self.plan.tolerant and number == self.plan.quotes
        left: list[IntArray | None] = [seg_start]  # left[i]: where step i starts
        for index, step in enumerate(steps):
            position = left[-1]
            assert position is not None
            if step.kind == "lit":
                _check_literal(lines, position, step.text, good)
                left.append(position + step.width)
            elif step.kind == "fixed":
                left.append(position + step.width)
            elif step.kind == "token" and (stop := _terminator_after(steps, index)) is not None:
                if stop >= 0:
                    end, found = lines.scan_right(position, (stop, 10))
                    good &= found
                elif open_right:  # the last token of a tolerant line: up to a space or the end
                    end, found = lines.scan_right(position, (32, 10, 13))
                    good &= found
                else:  # up to the quote or line end, with no space inside
                    space, found = lines.scan_right(position, (32, 10))
                    good &= ~found | (space >= seg_end)
                    end = seg_end
                left.append(end)
            else:
                break
        right: list[IntArray | None] = [None] * (len(steps) + 1)  # right[i]: where step i starts
        if len(left) == len(steps) + 1:
            final = left[-1]
            assert final is not None
            if open_right:  # like the regex's "(?: [^\n]*)?" tail
                good &= (final == ends) | (lines.a[final] == 32)
            else:
                good &= final == seg_end
        else:
            right[len(steps)] = seg_end
            for index in range(len(steps) - 1, len(left) - 2, -1):
                position = right[index + 1]
                assert position is not None
                step = steps[index]
                if step.kind == "lit":
                    _check_literal(lines, position - step.width, step.text, good)
                    right[index] = position - step.width
                elif step.kind == "fixed":
                    right[index] = position - step.width
                elif step.kind == "token" and (stop := _terminator_before(steps, index)) is not None:
                    if stop >= 0:
                        begin, found = lines.scan_left(position, (stop, 10))
                        good &= found
                    else:  # from the segment start, with no space inside
                        space, found = lines.scan_right(seg_start, (32, 10))
                        good &= ~found | (space >= position)
                        begin = seg_start
                    right[index] = begin
                else:
                    # The free step the left walk stopped at: it spans the gap.
                    break
        for index, step in enumerate(steps):
            opening = left[index] if index < len(left) else right[index]
            closing = left[index + 1] if index + 1 < len(left) else right[index + 1]
            if opening is None or closing is None:
                continue  # cannot happen for a plan that passed _locatable
            if index + 1 >= len(left):
                good &= closing >= opening
            if step.role is not None:
                spans[step.role] = (opening + step.inner, closing - step.inner)

    # --- decoding -----------------------------------------------------------

    @staticmethod
    def _status(lines: _Lines, at: IntArray) -> tuple[IntArray, BoolArray]:
        a = lines.a
        first, second, third = (a[at + i] - np.uint8(48) for i in range(3))
        valid = (first <= 9) & (second <= 9) & (third <= 9)
        value: IntArray = first.astype(np.int64) * 100 + second.astype(np.int64) * 10 + third
        return value, valid

    def _clf_minutes(self, lines: _Lines, at: IntArray) -> tuple[IntArray, IntArray, BoolArray]:
        """(minute start in epoch seconds, UTC offset in seconds, valid) of
        ``05/Mar/2024:12:00:00 +0000`` at ``at``.

        A chunk spans a few minutes, so the text without its seconds is hashed
        and only distinct minutes are decoded (and validated) in Python; the
        seconds are checked per line."""
        a, words = lines.a, lines.words
        valid = (words[at + 16] & _COLON_MASK) == _COLON  # byte 17: the ":" before the seconds
        tens, units = a[at + 18] - np.uint8(48), a[at + 19] - np.uint8(48)
        valid &= (tens <= 6) & (units <= 9) & (tens.astype(np.int64) * 10 + units <= 60)
        key = (
            (words[at] * _HASH_LO)
            ^ (words[at + 8] * _HASH_HI)
            ^ ((words[at + 18] & _ZONE_MASK) + a[at + 16]) * _HASH_ZONE
        )

        def decode(row: int) -> tuple[int, int, int]:
            begin = int(at[row])
            minute, offset, ok = self._decode_minute(lines.text(begin, begin + _CLF_WIDTH))
            return minute, offset, int(ok)

        values = self._minute_table.lookup(key, decode)
        return values[:, 0], values[:, 1], valid & (values[:, 2] == 1)

    @staticmethod
    def _decode_minute(text: bytes) -> tuple[int, int, bool]:
        if _CLF_TEXT.fullmatch(text) is None:
            return 0, 0, False
        minute = minute_start(CLF, "", text[:17], text[21:26])
        offset = offset_seconds(text[21:26])
        return (minute, offset, True) if minute is not None and offset is not None else (0, 0, False)

    def _token_keys(
        self, lines: _Lines, begin: IntArray, end: IntArray, max_len: int
    ) -> tuple[npt.NDArray[np.uint64], BoolArray]:
        """Each token as an integer key (exact up to 8 bytes, a 64-bit hash up
        to 16); ``fits`` is False for longer tokens."""
        length = end - begin
        fits = (length >= 0) & (length <= max_len)
        clipped = np.clip(length, 0, 16).astype(np.uint64)
        first = lines.words[begin]
        low_bytes = np.minimum(clipped, np.uint64(8))
        keep = np.where(low_bytes >= 8, np.uint64(0xFFFFFFFFFFFFFFFF), (np.uint64(1) << (low_bytes * 8)) - 1)
        key = first & keep
        if max_len > 8:
            high_bytes = clipped - low_bytes
            second = lines.words[begin + 8]
            keep_high = np.where(
                high_bytes >= 8, np.uint64(0xFFFFFFFFFFFFFFFF), (np.uint64(1) << (high_bytes * 8)) - 1
            )
            key = (key * _HASH_LO) ^ ((second & keep_high) + clipped) * _HASH_HI
        return key, fits

    def _latency_buckets(self, lines: _Lines, begin: IntArray, end: IntArray) -> IntArray:
        """Bucket per line (-1: no latency, e.g. ``-``)."""
        keys, fits = self._token_keys(lines, begin, end, 8)
        buckets: IntArray = np.full(len(keys), -1, dtype=np.int64)
        scale = self.layout.latency_scale
        rows = np.flatnonzero(fits)
        if len(rows):

            def decode(row: int) -> tuple[int]:
                at = int(rows[row])
                return (_bucket_for(lines.text(int(begin[at]), int(end[at])), scale),)

            buckets[rows] = self._latency_table.lookup(keys[rows], decode)[:, 0]
        for row in np.flatnonzero(~fits).tolist():  # rare: tokens over 8 bytes
            buckets[row] = _bucket_for(lines.text(int(begin[row]), int(end[row])), scale)
        return buckets

    def _clients(self, lines: _Lines, begin: IntArray, end: IntArray, out: Partial) -> None:
        keys, fits = self._token_keys(lines, begin, end, 16)
        counts: dict[bytes, int] = {}
        rows = np.flatnonzero(fits)
        if len(rows):
            firsts, tally, _ = _groups(keys[rows])
            if len(tally) > _CHUNK_CLIENTS:
                # Only the chunk's leaders are turned into text: the overall
                # counter is a bounded sketch anyway, and a client outside a
                # chunk's top few hundred cannot lead the whole log unless it
                # does so in other chunks.
                leaders = np.argpartition(tally, -_CHUNK_CLIENTS)[-_CHUNK_CLIENTS:]
                firsts, tally = firsts[leaders], tally[leaders]
            for row, count in zip(rows[firsts].tolist(), tally.tolist(), strict=True):
                counts[lines.text(int(begin[row]), int(end[row]))] = count
        for row in np.flatnonzero(~fits).tolist():  # IPv6 and other long clients
            name = lines.text(int(begin[row]), int(end[row]))
            counts[name] = counts.get(name, 0) + 1
        add_bounded(out.clients, counts, CLIENT_KEEP)

    # --- the chunk ------------------------------------------------------------

    def feed(self, chunk: bytes, out: Partial, fallback: Fallback) -> None:
        lines = _Lines(chunk, self._scratch)
        total = len(lines.starts)
        if total == 0:
            return
        quotes = lines.positions(34).astype(np.int64)
        plan = self.plan
        # Quotes of line i: from the first at or after its start up to the
        # next line's first (no quote sits on a newline).
        qfirst = np.searchsorted(quotes, lines.starts).astype(np.int64)
        qnext = np.empty_like(qfirst)
        qnext[:-1] = qfirst[1:]
        qnext[-1:] = np.searchsorted(quotes, lines.newlines[-1:])
        qcount = qnext - qfirst
        shaped = qcount >= plan.quotes if plan.tolerant else qcount == plan.quotes
        rows = np.flatnonzero(shaped)
        if len(rows) * 2 < total:
            fallback(chunk)  # mostly another shape: not worth splitting
            return
        spans, good = self._spans(lines, rows, qfirst[rows], qcount[rows], quotes)
        time_begin = spans[TIME][0]
        minutes, offsets, valid = self._clf_minutes(lines, time_begin)
        good &= valid
        status, valid = self._status(lines, spans[STATUS][0])
        good &= valid
        rejected = np.ones(total, dtype=bool)
        rejected[rows[good]] = False
        self._reject(lines, np.flatnonzero(rejected), fallback)
        keep = np.flatnonzero(good)
        if not len(keep):
            return
        rows, minutes, offsets, status = rows[keep], minutes[keep], offsets[keep], status[keep]
        spans = {role: (begin[keep], end[keep]) for role, (begin, end) in spans.items()}
        accepted = len(rows)
        out.lines += accepted
        out.parsed += accepted
        if bool((offsets == offsets[0]).all()):
            zone = int(offsets[0])
            out.offsets[zone] = out.offsets.get(zone, 0) + accepted
        else:
            zones, zone_counts = np.unique(offsets, return_counts=True)
            for zone, count in zip(zones.tolist(), zone_counts.tolist(), strict=True):
                out.offsets[zone] = out.offsets.get(zone, 0) + count
        base = int(minutes.min())
        relative = (minutes - base) // 60
        self._count(relative * 1000 + status, 1000, base, out.status)
        if LATENCY in spans:
            buckets = self._latency_buckets(lines, *spans[LATENCY])
            timed = buckets >= 0
            self._count(
                relative[timed] * _LATENCY_BUCKETS + np.minimum(buckets[timed], _LATENCY_BUCKETS - 1),
                _LATENCY_BUCKETS,
                base,
                out.latency,
            )
        if CLIENT in spans:
            self._clients(lines, *spans[CLIENT], out)
        failing = np.flatnonzero(status >= 500)
        if len(failing):
            self._failures(lines, failing, minutes, spans, out)

    @staticmethod
    def _count(keys: IntArray, width: int, base: int, into: dict[tuple[int, int], int]) -> None:
        """Add per-(minute, value) counts; ``keys`` = relative minute × width + value."""
        if not len(keys):
            return
        if int(keys.max()) < 8_000_000:
            tally = np.bincount(keys)
            present = np.flatnonzero(tally)
            values = tally[present]
        else:  # a chunk spanning months: sort instead of a huge bincount
            present, values = np.unique(keys, return_counts=True)
        for key, count in zip(present.tolist(), values.tolist(), strict=True):
            slot = (base + key // width * 60, key % width)
            into[slot] = into.get(slot, 0) + count

    def _failures(
        self,
        lines: _Lines,
        rows: IntArray,
        minutes: IntArray,
        spans: dict[str, tuple[IntArray, IntArray]],
        out: Partial,
    ) -> None:
        located = {role: (begin[rows].tolist(), end[rows].tolist()) for role, (begin, end) in spans.items()}
        touched: set[int] = set()

        def column(role: str) -> list[bytes | None]:
            span = located.get(role)
            if span is None:
                return [None] * len(rows)
            return [lines.text(begin, end) for begin, end in zip(*span, strict=True)]

        if PATH in located:
            paths = [value.split(b"?", 1)[0][:300] if value is not None else None for value in column(PATH)]
        else:
            paths = [request_path(value) if value is not None else None for value in column(REQUEST)]
        clients, hosts, upstreams = column(CLIENT), column(HOST), column(UPSTREAM)
        for at, minute in enumerate(minutes[rows].tolist()):
            touched.add(minute)
            for table, value in (
                (out.fail_paths, paths[at]),
                (out.fail_clients, clients[at]),
                (out.fail_hosts, hosts[at]),
            ):
                if value:
                    bucket = table.setdefault(minute, {})
                    bucket[value] = bucket.get(value, 0) + 1
            listed = upstreams[at]
            if listed is not None:
                bucket = out.fail_upstreams.setdefault(minute, {})
                for upstream in split_list(listed):
                    bucket[upstream] = bucket.get(upstream, 0) + 1
        for minute in touched:
            for table in (out.fail_paths, out.fail_clients, out.fail_hosts, out.fail_upstreams):
                counts = table.get(minute)
                if counts is not None and len(counts) > 4 * FAIL_KEEP:
                    prune(counts, FAIL_KEEP)

    @staticmethod
    def _reject(lines: _Lines, rows: IntArray, fallback: Fallback) -> None:
        """Hand rejected lines to the regex path, as one mini-chunk."""
        if not len(rows):
            return
        chunk = lines.chunk
        starts = (lines.starts[rows] - _PAD).tolist()
        ends = (lines.newlines[rows] - _PAD).tolist()
        fallback(b"".join(chunk[start : end + 1] for start, end in zip(starts, ends, strict=True)))


def _bucket_for(text: bytes, scale: float) -> int:
    seconds = latency_seconds(text, scale)
    return -1 if seconds is None else bucket_of(seconds)
