"""A real HAProxy for the ``haproxy`` step tests, in front of tiny HTTP servers.

``Backend`` is a threaded HTTP server that answers ``/health`` (for HAProxy's
checks), ``/`` with its own name, and ``/hold`` by waiting until the test
releases it — an open session on that server for as long as the test needs.
``HAProxyProcess`` runs the Debian ``haproxy`` in the foreground with an admin
``stats socket`` (Unix, and TCP for ``tcp://``) on free 127.0.0.1 ports.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from tests.harness import free_port
from tests.runbooks.child_process import stop_child, system_binary


def haproxy_binary() -> str | None:
    return system_binary("haproxy")


class Backend:
    """One upstream server; ``entered`` is set when a ``/hold`` request arrives."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entered = threading.Event()
        self.release = threading.Event()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/hold":
                    backend.entered.set()
                    backend.release.wait(60)  # a guard, so a failed test cannot hang the thread forever
                body = backend.name.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # HAProxy checks every 100 ms; the test output does not need them

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"backend-{name}", daemon=True)

    def __enter__(self) -> Backend:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


class HAProxyProcess:
    """``haproxy -db`` with frontend ``fe`` → backend ``web`` (servers ``s1``, ``s2``)."""

    def __init__(self, binary: str, workdir: Path, backends: dict[str, Backend]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.socket_path = workdir / "admin.sock"
        self.port = free_port()
        self.tcp_port = free_port()
        self.log = workdir / "haproxy.log"
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{backend.port} check inter 100ms rise 1 fall 2"
            for name, backend in backends.items()
        )
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(
            f"""global
    stats socket {self.socket_path} mode 600 level admin
    stats socket ipv4@127.0.0.1:{self.tcp_port} level admin
    stats timeout 30s

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 10s

frontend fe
    bind 127.0.0.1:{self.port}
    default_backend web

backend web
    balance roundrobin
    option httpchk GET /health
{servers}
"""
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HAProxyProcess:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 15
        while not self._accepts():
            if self._process.poll() is not None:
                self._stop()
                raise RuntimeError(f"haproxy exited at start:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                self._stop()
                raise RuntimeError(f"haproxy did not open its stats socket:\n{self.log.read_text()}")
            time.sleep(0.05)
        return self

    def _accepts(self) -> bool:
        if not self.socket_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
        return True

    def _stop(self) -> None:
        stop_child(self._process)
        self._process = None

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()
