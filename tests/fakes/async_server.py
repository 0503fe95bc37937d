"""An aiohttp server on 127.0.0.1:0 inside the test's own event loop, for
fakes used from async tests; every request goes to ``_dispatch``."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiohttp import web


class AsyncFakeServer:
    _runner: web.AppRunner | None = None
    url: str = ""

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError  # each fake answers its own API

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
