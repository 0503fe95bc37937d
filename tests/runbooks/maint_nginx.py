"""A real nginx serving a site with the shipped maintenance snippet included.

The snippet is copied with its two operator paths (the flag file and the
installed page) pointed into the test's directory — exactly the edit its
comments ask an operator to make — and nginx runs in the foreground on a
free 127.0.0.1 port with everything (pid, logs, temp files) under a tmp prefix.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.harness import free_port
from tests.runbooks.child_process import stop_child, system_binary

REPO = Path(__file__).resolve().parents[2]
SNIPPETS = REPO / "runbooks" / "maintenance"
NGINX_SNIPPET = SNIPPETS / "nginx-maintenance.conf"
APACHE_SNIPPET = SNIPPETS / "apache-maintenance.conf"
PAGE = SNIPPETS / "maintenance.html"
# The paths the shipped snippets use, which an operator adapts.
SHIPPED_FLAG = "/var/lib/firebell/maintenance.flag"
SHIPPED_PAGE = "/usr/share/firebell/maintenance.html"
SITE_BODY = "<h1>the normal site</h1>\n"


def nginx_binary() -> str | None:
    return system_binary("nginx")


class NginxSite:
    """nginx with one server: the maintenance snippet, then ``/`` from a static root."""

    def __init__(self, binary: str, prefix: Path, flag_file: Path) -> None:
        self.binary = binary
        self.prefix = prefix
        self.flag_file = flag_file
        self.port = free_port()
        root = prefix / "site"
        root.mkdir()
        (root / "index.html").write_text(SITE_BODY)
        (prefix / "logs").mkdir()
        (prefix / "tmp").mkdir()

        snippet = NGINX_SNIPPET.read_text()
        directives = [line for line in snippet.splitlines() if not line.lstrip().startswith("#")]
        for shipped in (SHIPPED_FLAG, SHIPPED_PAGE):
            assert sum(shipped in line for line in directives) == 1, f"{shipped} moved in the snippet"
        self.snippet = prefix / "firebell-maintenance.conf"
        self.snippet.write_text(
            snippet.replace(SHIPPED_FLAG, str(flag_file)).replace(SHIPPED_PAGE, str(PAGE))
        )

        temp = " ".join(
            f"{kind}_temp_path {prefix}/tmp/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.config = prefix / "nginx.conf"
        self.config.write_text(
            f"""# One process as the test's user: no worker switching to an unprivileged
# user that could not read the test's tmp directory.
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body; {temp}
    types {{ text/html html; text/plain txt; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        include {self.snippet};
        location / {{
            root {root};
            index index.html;
        }}
    }}
}}
"""
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> NginxSite:
        log = self.prefix / "logs" / "error.log"
        self._process = subprocess.Popen(
            [
                self.binary,
                "-p",
                str(self.prefix),
                "-e",
                str(log),
                "-c",
                str(self.config),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not self._accepts():
            if self._process.poll() is not None:
                self._stop()
                raise RuntimeError(f"nginx exited at start:\n{log.read_text()}")
            if time.monotonic() > deadline:
                self._stop()
                raise RuntimeError(f"nginx did not start listening:\n{log.read_text()}")
            time.sleep(0.05)
        return self

    def _accepts(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(("127.0.0.1", self.port))
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
