"""Run ``firebell serve`` with timers on its database access, for ``benchmarks/ingest.py --probe``.

Usage: ``python benchmarks/sqlite_probe.py serve --port N`` (what ``ingest.py
--probe`` runs instead of ``firebell``). It changes nothing in firebell's
behaviour; it wraps three SQLAlchemy asyncio entry points and records, per
calling firebell function:

- ``checkout``: waiting for a pooled connection (``AsyncConnection.start``);
- ``begin``: ``AsyncTransaction.start``, i.e. firebell's ``BEGIN IMMEDIATE``:
  the wait for SQLite's write lock;
- ``hold``: from the transaction's start to the end of its commit or rollback:
  how long the write lock was held;
- ``savepoint``: ``begin_nested`` (no lock wait of its own, listed for counts).

It also samples the event loop's lag (a 10 ms sleep that wakes late) and the
number of pooled connections in use. Read-only work through
``engine.connect()`` takes the lock inside its first statement; that shows up
as ``checkout`` only.

``PROBE_OUT`` names the JSON file written when the server stops (default
``sqlite_probe.json`` in the working directory). ``PROBE_DISABLE`` takes a
comma-separated list of ``ingest`` and ``worker``: those background loops then
idle, to measure the webhook intake on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIREBELL_DIRS = (str(ROOT / "bot") + os.sep, str(ROOT / "handlers") + os.sep)

samples: dict[str, list[float]] = defaultdict(list)
# Open transactions (AsyncTransaction has __slots__): id -> (caller, started).
open_transactions: dict[int, tuple[str, float]] = {}


def caller(frame: FrameType | None) -> str:
    """The innermost two firebell functions on the stack, outermost last."""
    names: list[str] = []
    while frame is not None and len(names) < 2:
        if frame.f_code.co_filename.startswith(FIREBELL_DIRS):
            names.append(frame.f_code.co_qualname)
        frame = frame.f_back
    return " < ".join(names) or "?"


def install() -> None:
    from sqlalchemy.ext.asyncio.engine import AsyncConnection, AsyncTransaction

    connection_start = AsyncConnection.start
    transaction_start = AsyncTransaction.start
    commit = AsyncTransaction.commit
    rollback = AsyncTransaction.rollback
    aexit = AsyncTransaction.__aexit__

    async def timed_connection_start(self: AsyncConnection, is_ctxmanager: bool = False) -> AsyncConnection:
        who = caller(sys._getframe(1))
        began = time.perf_counter()
        try:
            return await connection_start(self, is_ctxmanager)
        finally:
            samples[f"checkout\t{who}"].append(time.perf_counter() - began)
            pool = self.sync_engine.pool
            checked_out = getattr(pool, "checkedout", None)
            if checked_out is not None:
                samples["pool connections in use\t"].append(float(checked_out()))

    async def timed_transaction_start(
        self: AsyncTransaction, is_ctxmanager: bool = False
    ) -> AsyncTransaction:
        who = caller(sys._getframe(1))
        began = time.perf_counter()
        try:
            return await transaction_start(self, is_ctxmanager)
        finally:
            now = time.perf_counter()
            if self.nested:
                samples[f"savepoint\t{who}"].append(now - began)
            else:
                samples[f"begin\t{who}"].append(now - began)
                open_transactions[id(self)] = (who, now)

    def ending(original: Callable[..., Coroutine[Any, Any, None]]) -> Any:
        async def end(self: AsyncTransaction, *args: Any) -> None:
            try:
                await original(self, *args)
            finally:
                probe = open_transactions.pop(id(self), None)
                if probe is not None:
                    who, started = probe
                    samples[f"hold\t{who}"].append(time.perf_counter() - started)

        return end

    AsyncConnection.start = timed_connection_start  # type: ignore[method-assign]
    AsyncTransaction.start = timed_transaction_start  # type: ignore[method-assign]
    AsyncTransaction.commit = ending(commit)  # type: ignore[method-assign]
    AsyncTransaction.rollback = ending(rollback)  # type: ignore[method-assign]
    AsyncTransaction.__aexit__ = ending(aexit)  # type: ignore[method-assign]  # `async with` ends here

    disabled = {part.strip() for part in os.environ.get("PROBE_DISABLE", "").split(",") if part.strip()}

    async def idle(_self: object) -> None:
        await asyncio.Event().wait()

    if "ingest" in disabled:
        from bot.work.ingest import IngestLoop

        IngestLoop.run = idle  # type: ignore[method-assign,assignment]
    if "worker" in disabled:
        from bot.work.worker import JobWorker

        JobWorker.run = idle  # type: ignore[method-assign,assignment]

    import handlers.app

    running = handlers.app.running

    @contextlib.asynccontextmanager
    async def running_with_lag_monitor(firebell: Any) -> AsyncIterator[Any]:
        async def monitor() -> None:
            while True:
                began = time.perf_counter()
                await asyncio.sleep(0.01)
                samples["event loop lag\t"].append(time.perf_counter() - began - 0.01)

        async with running(firebell) as started:
            task = asyncio.create_task(monitor())
            try:
                yield started
            finally:
                task.cancel()

    handlers.app.running = running_with_lag_monitor

    # uvicorn re-raises SIGTERM once it has shut down, so atexit would not run.
    import uvicorn

    serve = uvicorn.Server._serve

    async def serve_then_dump(self: uvicorn.Server, *args: Any, **kwargs: Any) -> None:
        try:
            await serve(self, *args, **kwargs)
        finally:
            dump()

    uvicorn.Server._serve = serve_then_dump  # type: ignore[method-assign]


def dump() -> None:
    summary: dict[str, dict[str, float]] = {}
    for key, values in samples.items():
        ordered = sorted(values)
        count = len(ordered)
        summary[key] = {
            "n": count,
            "sum": sum(ordered),
            "p50": ordered[count // 2],
            "p99": ordered[min(count - 1, int(count * 0.99))],
            "max": ordered[-1],
        }
    Path(os.environ.get("PROBE_OUT", "sqlite_probe.json")).write_text(json.dumps(summary, indent=1))


def main() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    install()
    from handlers.cli import main as firebell_main

    sys.argv[0] = "firebell"
    firebell_main()


if __name__ == "__main__":
    main()
