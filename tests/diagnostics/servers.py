"""A real HTTP(S) server for the probe tests: outages, CDN headers, redirects.

Built on :class:`tests.fakes.base.FakeServer` (aiohttp on 127.0.0.1, port 0,
in a background thread, every request recorded). Slow first bytes use the
base class's ``latency`` knob. Routes:

``/ok``               200 with ETag, Last-Modified, a request id
``/cdn``              Cloudflare-style cached 200 (``CF-Cache-Status: HIT``,
                      ``Age: 300``) — but a cache-busted request (query
                      ``_firebell``) gets the origin's 503 with ``Retry-After: 120``
``/cached-error``     a cached 503 while the cache-busted request gets 200
``/unavailable``      503 with ``Retry-After: 120`` for everyone
``/redirect/start``   301 → ``/redirect/middle`` (relative) → 302 → absolute
                      ``/redirect/end`` → 200
``/loop``             302 to itself
``/flaky``            503 and 200 alternately (first answer 503)
``/ratelimited``      429 with ``Retry-After`` and ``X-RateLimit-*``
``/to-metadata``      302 to ``http://169.254.169.254/latest/meta-data/``
``/to-mapped``        302 to ``http://[::ffff:169.254.169.254]/``
``/to-localhost``     302 to ``http://localhost:<port>/ok``
"""

from __future__ import annotations

from aiohttp import web

from bot.diagnostics.http_probe import CACHE_BUST_PARAM
from tests.fakes.base import FakeServer, RecordedRequest

CF_RAY = "8f1c2d3e4f5a6b7c-AMS"


def _redirect(status: int, location: str) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


class ProbeTarget(FakeServer):
    """The scripted target; ``flaky_count`` counts answers on ``/flaky``."""

    flaky_count = 0

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        busted = CACHE_BUST_PARAM in request.query
        path = request.path
        if path == "/ok":
            return web.Response(
                text="ok\n",
                headers={
                    "ETag": '"v1"',
                    "Last-Modified": "Wed, 01 Oct 2025 10:00:00 GMT",
                    "X-Request-Id": "req-123",
                    "Server": "probe-target",
                },
            )
        if path == "/cdn":
            if busted:
                return web.Response(
                    status=503,
                    text="overloaded\n",
                    headers={
                        "Retry-After": "120",
                        "Cache-Control": "no-store",
                        "CF-Cache-Status": "MISS",
                        "CF-Ray": CF_RAY,
                        "Server": "cloudflare",
                    },
                )
            return web.Response(
                text="cached page\n",
                headers={
                    "Cache-Control": "public, max-age=600",
                    "Age": "300",
                    "CF-Cache-Status": "HIT",
                    "CF-Ray": CF_RAY,
                    "Server": "cloudflare",
                },
            )
        if path == "/cached-error":
            if busted:
                return web.Response(text="fine\n", headers={"X-Cache": "MISS", "Via": "1.1 varnish"})
            return web.Response(
                status=503,
                text="cached error\n",
                headers={"X-Cache": "HIT", "Age": "42", "Via": "1.1 varnish"},
            )
        if path == "/unavailable":
            return web.Response(status=503, text="maintenance\n", headers={"Retry-After": "120"})
        if path == "/redirect/start":
            return _redirect(301, "/redirect/middle")
        if path == "/redirect/middle":
            return _redirect(302, f"{self.url}/redirect/end")
        if path == "/redirect/end":
            return web.Response(text="arrived\n")
        if path == "/loop":
            return _redirect(302, "/loop")
        if path == "/flaky":
            self.flaky_count += 1
            if self.flaky_count % 2:
                return web.Response(status=503, text="try again\n")
            return web.Response(text="ok\n")
        if path == "/ratelimited":
            return web.Response(
                status=429,
                text="slow down\n",
                headers={
                    "Retry-After": "30",
                    "X-RateLimit-Limit": "100",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": "30",
                },
            )
        if path == "/to-metadata":
            return _redirect(302, "http://169.254.169.254/latest/meta-data/")
        if path == "/to-mapped":
            return _redirect(302, "http://[::ffff:169.254.169.254]/")
        if path == "/to-localhost":
            return _redirect(302, f"http://localhost:{self.port}/ok")
        return web.Response(status=404, text="not found\n")
