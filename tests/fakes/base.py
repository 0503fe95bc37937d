"""Common machinery for the fake SaaS HTTP servers used in tests and benchmarks.

A :class:`FakeServer` is a real HTTP(S) server (``aiohttp.web`` with an
``AppRunner`` and a ``TCPSite`` on ``127.0.0.1``, port 0) running on its own
asyncio loop in a background thread.  Synchronous tests, async tests on another
loop, and separate processes under test can all talk to it through :attr:`url`.

Everything a test touches is synchronous and thread-safe (one ``RLock`` guards
the recorded requests, the scripted faults and the subclass state; request
handlers run under that lock too):

* every request is recorded as a :class:`RecordedRequest` (method, path, query,
  headers, parsed body, raw bytes, monotonic arrival time);
* :meth:`FakeServer.calls` / :meth:`FakeServer.wait_for` / :meth:`FakeServer.wait_for_calls`
  let tests assert on them;
* :attr:`FakeServer.latency` delays every answer (settable at any time);
* :meth:`FakeServer.fail_next` queues scripted failures for an endpoint.

Endpoint *keys* used by :meth:`calls` and :meth:`fail_next` match a request by
its fake-specific key (the Web API method name such as ``chat.postMessage`` for
Slack, the path otherwise), its path, ``"METHOD path"``, or a glob of any of
those (``"/v2/alerts/*/acknowledge"``, ``"PUT /incidents/*"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.parser
import email.policy
import json
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web

from .tls import TlsMaterial

__all__ = [
    "FakeServer",
    "Headers",
    "InjectedFault",
    "RecordedRequest",
    "flatten_params",
    "parse_body",
]

_MAX_BODY = 64 * 1024 * 1024


class Headers(dict[str, str]):
    """A ``dict`` of HTTP headers with case-insensitive lookups.

    Keys are stored lower-cased; ``headers["From"]``, ``headers["from"]``,
    ``"From" in headers`` and ``headers.get("FROM")`` all work.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for name, value in items:
            super().__setitem__(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __setitem__(self, name: str, value: str) -> None:
        super().__setitem__(name.lower(), value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


@dataclass(frozen=True)
class InjectedFault:
    """One scripted failure, as queued by :meth:`FakeServer.fail_next`."""

    key: str
    status: int
    retry_after: int | None = None
    slack_error: str | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    """Query parameters, last value wins (see :attr:`query_all` for repeats)."""
    headers: dict[str, str]
    """Request headers (a :class:`Headers`, so lookups ignore case)."""
    body: dict[str, Any]
    """Query parameters merged with the parsed body (JSON object, form or multipart).

    Repeated keys and keys ending in ``[]`` map to lists; a JSON body that is not
    an object is kept under ``"_json"``.
    """
    raw: bytes
    at: float
    """``time.monotonic()`` at arrival."""
    key: str = ""
    """The fake's name for the endpoint (Slack method name, else the path)."""
    query_all: dict[str, list[str]] = field(default_factory=dict)
    fault: InjectedFault | None = None
    """The scripted failure served for this request, if any."""

    def header(self, name: str) -> str | None:
        """Header value looked up case-insensitively, or None."""
        value = self.headers.get(name)
        if value is None:
            lowered = name.lower()
            for key, candidate in self.headers.items():
                if key.lower() == lowered:
                    return candidate
        return value

    def json(self) -> Any:
        """The raw body decoded as JSON."""
        return json.loads(self.raw)

    def matches(self, pattern: str) -> bool:
        """Whether *pattern* names this request (key, path, "METHOD path", or a glob)."""
        candidates = (
            self.key,
            self.path,
            f"{self.method} {self.path}",
            f"{self.method} {self.key}",
        )
        if "*" in pattern or "?" in pattern:
            return any(fnmatchcase(candidate, pattern) for candidate in candidates)
        return pattern in candidates

    def summary(self) -> str:
        """One line for failure messages."""
        tag = f" [fault {self.fault.status}]" if self.fault else ""
        return f"{self.method} {self.path}{tag}"


def flatten_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Fold (name, value) pairs into a dict: repeats and ``name[]`` become lists."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return {
        name: (values if len(values) > 1 or name.endswith("[]") else values[0])
        for name, values in grouped.items()
    }


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
    fields: dict[str, Any] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is None:
            fields[name] = data.decode("utf-8", errors="replace")
        else:
            fields[name] = data
            fields[f"{name}.filename"] = part.get_filename()
    return fields


def parse_body(content_type: str, raw: bytes, query_pairs: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """Merge query parameters with a JSON, form-urlencoded or multipart body."""
    body = flatten_params(query_pairs)
    if not raw:
        return body
    mime = content_type.split(";", 1)[0].strip().lower()
    looks_json = raw.lstrip()[:1] in (b"{", b"[")
    if mime == "application/json" or mime.endswith("+json") or (not mime and looks_json):
        try:
            data = json.loads(raw)
        except ValueError:
            return body
        if isinstance(data, dict):
            body.update(data)
        else:
            body["_json"] = data
    elif mime == "application/x-www-form-urlencoded":
        text = raw.decode("utf-8", errors="replace")
        body.update(flatten_params(parse_qsl(text, keep_blank_values=True)))
    elif mime == "multipart/form-data":
        body.update(_parse_multipart(content_type, raw))
    return body


@dataclass
class _QueuedFault:
    fault: InjectedFault
    remaining: int


class FakeServer:
    """Base class: a background-thread aiohttp server that records every request.

    Subclasses implement :meth:`_handle` (called with the lock held) and may
    override :meth:`_key_for` and :meth:`_default_fault_body`.
    """

    def __init__(self, *, tls: TlsMaterial | None = None, latency: float = 0.0) -> None:
        self._tls = tls
        self._lock = threading.RLock()
        self._latency = float(latency)
        self._requests: list[RecordedRequest] = []
        self._faults: list[_QueuedFault] = []
        self._errors: list[BaseException] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._serve,
            args=(ready, failure),
            name=f"{type(self).__name__}-server",
            daemon=True,
        )
        thread.start()
        if not ready.wait(timeout=15):
            raise RuntimeError(f"{type(self).__name__} did not start within 15 s")
        if failure:
            thread.join(timeout=5)
            raise RuntimeError(f"{type(self).__name__} failed to start") from failure[0]
        self._thread = thread

    def stop(self) -> None:
        """Stop serving, close connections and join the thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
        if thread.is_alive():
            raise RuntimeError(f"{type(self).__name__} server thread did not stop")
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner = loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported to start()
            failure.append(exc)
            loop.close()
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            for transport in list(self._transports):
                transport.abort()
            # Closing a transport (TLS ones take a few round trips) finishes
            # on later loop iterations; give them those before closing.
            loop.run_until_complete(asyncio.sleep(0.05))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self) -> web.AppRunner:
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
        await runner.setup()
        try:
            ssl_context = self._tls.server_context if self._tls is not None else None
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The bound TCP port (only once started)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def scheme(self) -> str:
        """``https`` when built with TLS material, else ``http``."""
        return "https" if self._tls is not None else "http"

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def tls(self) -> TlsMaterial | None:
        """The TLS material the server was built with, if any."""
        return self._tls

    # ------------------------------------------------------------------ knobs

    @property
    def latency(self) -> float:
        """Seconds added before every answer (including scripted failures)."""
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        with self._lock:
            self._latency = float(seconds)

    def fail_next(
        self,
        key: str,
        *,
        status: int | None = None,
        times: int = 1,
        retry_after: int | None = None,
        slack_error: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next *times* requests matching *key* with a scripted failure.

        *status* defaults to 500, or to 200 when *slack_error* is given (Slack
        reports errors as HTTP 200 ``{"ok": false, "error": ...}``).
        *retry_after* adds a ``Retry-After`` header; *body* replaces the
        fake's default error body.  Faults for the same key are served in the
        order queued.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if status is None:
            status = 200 if slack_error is not None else 500
        fault = InjectedFault(
            key=key, status=status, retry_after=retry_after, slack_error=slack_error, body=body
        )
        with self._lock:
            self._faults.append(_QueuedFault(fault=fault, remaining=times))

    def pending_faults(self) -> list[InjectedFault]:
        """Scripted failures not served yet (one entry per remaining use)."""
        with self._lock:
            return [queued.fault for queued in self._faults for _ in range(queued.remaining)]

    # ------------------------------------------------------------------ assertions

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by the fake's own handlers (answered as HTTP 500)."""
        with self._lock:
            return list(self._errors)

    def calls(self, path_or_method: str) -> list[RecordedRequest]:
        """Recorded requests matching a key, path, ``"METHOD path"`` or glob."""
        with self._lock:
            return [request for request in self._requests if request.matches(path_or_method)]

    def last_call(self, path_or_method: str) -> RecordedRequest:
        """The most recent matching request; AssertionError when there is none."""
        found = self.calls(path_or_method)
        if not found:
            raise AssertionError(f"{type(self).__name__}: no call to {path_or_method!r}; {self._describe()}")
        return found[-1]

    def clear(self) -> None:
        """Forget recorded requests, handler errors and unserved scripted failures."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._errors.clear()

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10, *, message: str | None = None
    ) -> None:
        """Poll *predicate* until true; AssertionError describing the state on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return
            if time.monotonic() >= deadline:
                what = message or getattr(predicate, "__qualname__", repr(predicate))
                name = type(self).__name__
                raise AssertionError(
                    f"{name}: condition {what!r} still false after {timeout:g} s; {self._describe()}"
                )
            time.sleep(0.01)

    def wait_for_calls(
        self, path_or_method: str, count: int = 1, timeout: float = 10
    ) -> list[RecordedRequest]:
        """Wait until at least *count* matching requests arrived and return them."""
        self.wait_for(
            lambda: len(self.calls(path_or_method)) >= count,
            timeout,
            message=f"at least {count} call(s) to {path_or_method}",
        )
        return self.calls(path_or_method)

    def _describe(self) -> str:
        with self._lock:
            recent = [request.summary() for request in self._requests[-15:]]
            total = len(self._requests)
            errors = [repr(error) for error in self._errors[-3:]]
        text = f"{total} request(s) recorded"
        if recent:
            text += " (latest: " + ", ".join(recent) + ")"
        if errors:
            text += "; handler errors: " + ", ".join(errors)
        return text

    # ------------------------------------------------------------------ serving

    def _key_for(self, method: str, path: str) -> str:
        """The endpoint key recorded for a request (override per fake)."""
        return path

    def _default_fault_body(self, status: int) -> dict[str, Any]:
        """Body of a scripted failure when the test gave none (override per fake)."""
        return {"error": f"injected failure (HTTP {status})"}

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        """Answer one request; called on the server loop with the lock held."""
        return web.json_response({"error": "not found"}, status=404)

    def _take_fault(self, request: RecordedRequest) -> InjectedFault | None:
        for queued in self._faults:
            if request.matches(queued.fault.key):
                queued.remaining -= 1
                if queued.remaining <= 0:
                    self._faults.remove(queued)
                return queued.fault
        return None

    def _fault_response(self, fault: InjectedFault) -> web.StreamResponse:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.body is not None:
            payload: dict[str, Any] = fault.body
        elif fault.slack_error is not None:
            payload = {"ok": False, "error": fault.slack_error}
        else:
            payload = self._default_fault_body(fault.status)
        return web.json_response(payload, status=fault.status, headers=headers)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        # Keep-alive connections outlive requests; stop() closes them itself.
        if request.transport is not None:
            self._transports.add(request.transport)
        raw = await request.read()
        query_pairs = [(name, value) for name, value in request.query.items()]
        query_all: dict[str, list[str]] = {}
        for name, value in query_pairs:
            query_all.setdefault(name, []).append(value)
        recorded = RecordedRequest(
            method=request.method.upper(),
            path=request.path,
            query={name: values[-1] for name, values in query_all.items()},
            headers=Headers(request.headers.items()),
            body=parse_body(request.headers.get("Content-Type", ""), raw, query_pairs),
            raw=raw,
            at=time.monotonic(),
            key=self._key_for(request.method.upper(), request.path),
            query_all=query_all,
        )
        with self._lock:
            fault = self._take_fault(recorded)
            if fault is not None:
                recorded = dataclasses.replace(recorded, fault=fault)
            self._requests.append(recorded)
            latency = self._latency
        if latency > 0:
            await asyncio.sleep(latency)
        if fault is not None:
            return self._fault_response(fault)
        try:
            with self._lock:
                return self._handle(recorded)
        except Exception as exc:
            with self._lock:
                self._errors.append(exc)
            traceback.print_exc(file=sys.stderr)
            return web.json_response({"error": f"fake handler crashed: {exc!r}"}, status=500)


def json_response(
    data: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response (thin wrapper to keep the fakes' call sites short)."""
    return web.json_response(dict(data), status=status, headers=dict(headers or {}))
