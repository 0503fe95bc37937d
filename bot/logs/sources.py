"""Reading log sources in large newline-aligned chunks: files, gzip and stdin.

Nothing here holds more than one chunk (plus one partial line) at a time, so
memory does not depend on the file size. gzip is recognised by its magic
bytes, not the file name, because rotated logs are not always named ``.gz``.
Plain files can also be cut into byte ranges, each read by its own process:
a range owns every line that *starts* inside it.

Paths are used as given: callers decide which paths are allowed (the CLI
trusts its operator; the Slack side passes only vetted paths).
"""

from __future__ import annotations

import gzip
import os
import stat
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from bot.errors import UserError

CHUNK_SIZE = 2 << 20
GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"
# A "line" longer than this without a newline is handed on whole (and will
# count as malformed) instead of growing the buffer without end.
_MAX_LINE = 64 << 20


@dataclass(frozen=True)
class Source:
    """One input: a path or ``-`` for stdin."""

    name: str
    compressed: bool
    size: int | None  # bytes, for plain regular files only (range splitting)

    @property
    def splittable(self) -> bool:
        return self.size is not None and not self.compressed and self.name != STDIN


def _user_error(name: str, exc: BaseException) -> UserError:
    if isinstance(exc, OSError) and exc.strerror:
        return UserError(f"{name}: {exc.strerror}")
    if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        return UserError(f"{name}: not a valid or complete gzip file ({exc})")
    return UserError(f"{name}: {exc}")


def inspect_source(name: str) -> Source:
    """Check that ``name`` can be read and whether it is gzip; ``UserError`` otherwise."""
    if name == STDIN:
        head = sys.stdin.buffer.peek(2)[:2] if hasattr(sys.stdin.buffer, "peek") else b""
        return Source(name, head == GZIP_MAGIC, None)
    try:
        info = os.stat(name)
        if stat.S_ISDIR(info.st_mode):
            raise UserError(f"{name}: is a directory")
        with open(name, "rb") as handle:
            head = handle.read(2)
    except OSError as exc:
        raise _user_error(name, exc) from exc
    compressed = head == GZIP_MAGIC
    regular = stat.S_ISREG(info.st_mode)
    return Source(name, compressed, info.st_size if regular and not compressed else None)


@contextmanager
def open_stream(source: Source) -> Iterator[BinaryIO]:
    """The decompressed byte stream of ``source``."""
    try:
        raw: BinaryIO = sys.stdin.buffer if source.name == STDIN else open(source.name, "rb")  # noqa: SIM115
    except OSError as exc:
        raise _user_error(source.name, exc) from exc
    try:
        if source.compressed:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            yield raw
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def iter_chunks(stream: BinaryIO, name: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Newline-aligned chunks of ``stream`` (the last one may lack its newline)."""
    rest = b""
    while True:
        try:
            block = stream.read(chunk_size)
        except (OSError, EOFError, zlib.error) as exc:
            raise _user_error(name, exc) from exc
        if not block:
            if rest:
                yield rest
            return
        data = rest + block if rest else block
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) < _MAX_LINE:
            rest = data
            continue
        if cut == 0:
            cut = len(data)
        yield data[:cut]
        rest = data[cut:]


def split_ranges(size: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous byte ranges covering ``[0, size)``."""
    parts = max(1, min(parts, size // (1 << 20) or 1))
    bounds = [size * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def iter_range(path: str, start: int, end: int, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Chunks holding exactly the lines of ``path`` that start in ``[start, end)``."""
    try:
        with open(path, "rb") as handle:
            if start > 0:
                # The line that straddles ``start`` belongs to the previous range;
                # reading from start-1 also keeps a line that begins at ``start``.
                handle.seek(start - 1)
                handle.readline()
            remaining = end - handle.tell()
            rest = b""
            while remaining > 0:
                block = handle.read(min(chunk_size, remaining))
                if not block:
                    break
                remaining -= len(block)
                if remaining <= 0 and not block.endswith(b"\n"):
                    block += handle.readline()
                data = rest + block if rest else block
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    rest = data
                    continue
                yield data[:cut]
                rest = data[cut:]
            if rest:
                yield rest
    except OSError as exc:
        raise _user_error(path, exc) from exc
