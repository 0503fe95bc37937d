"""Targets and helpers for ``test_shipped_runbooks``: the shipped runbooks run
through ``RunbookService`` against real or local-fake targets.

Most targets come from the step kinds' own tests (HAProxy, nginx, the fake
CDN, SSH, Docker, Kubernetes, PostgreSQL). Two small servers are new here:

``FailingBackend``
    an upstream for the real HAProxy whose health check passes but whose
    pages answer 503 — the "one bad server behind the balancer" a ``web-503``
    run drains;
``HealthySite``
    a site that answers 200 with a ``Cache-Control`` header, GET and HEAD —
    what ``post-incident-validation`` expects of a recovered page.

``RunbookWorld`` writes a ``firebell.toml`` pointing at whatever targets a test
started, loads it with ``load_settings`` like ``firebell`` does, and runs
runbooks through plan → request → execute on a migrated SQLite database.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.runbooks.engine import RunReport
from bot.runbooks.plan import Plan
from bot.runbooks.runs import RunRow
from bot.runbooks.secrets import SecretStore
from bot.runbooks.service import RunbookService
from bot.settings import Settings, load_settings
from bot.store.database import create_engine
from bot.store.migrate import migrate
from tests.clock import FakeClock
from tests.fakes.base import FakeServer, RecordedRequest

HEALTHY_BODY = "<h1>shop</h1>\n"


class FailingBackend:
    """An HAProxy upstream: ``/health`` answers 200 (so HAProxy keeps it UP),
    every other path 503 with ``Retry-After`` — the app is broken, its checks are not."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.path == "/health"
                body = b"ok" if ok else b"upstream app failing\n"
                self.send_response(200 if ok else 503)
                if not ok:
                    self.send_header("Retry-After", "30")
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # HAProxy checks every 100 ms

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="failing-backend", daemon=True)

    def __enter__(self) -> FailingBackend:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


class HealthySite(FakeServer):
    """``/`` answers 200 with ``Cache-Control`` (GET and HEAD); anything else 404."""

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        if request.path != "/":
            return web.Response(status=404, text="not found\n")
        return web.Response(
            text=HEALTHY_BODY,
            content_type="text/html",
            headers={"Cache-Control": "public, max-age=60", "ETag": '"shop-1"'},
        )


# ----------------------------------------------------------------------- configuration


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def write_toml(path: Path, tables: dict[str, dict[str, Any]]) -> Path:
    """``{"runbooks.cdn.main": {...}}`` → a firebell.toml with those tables."""
    lines: list[str] = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class RecordingInteraction:
    """The run's channel: ``notify`` texts are kept; approvals are granted by ``bob``."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    async def notify(self, text: str) -> None:
        self.notes.append(text)

    async def approval(self, role: str | None, prompt: str) -> str:
        return "bob"


@dataclass
class Finished:
    """One finished run, as an operator (and the audit) sees it."""

    run_id: int
    plan: Plan
    report: RunReport
    row: RunRow
    audit: list[dict[str, Any]]
    notes: list[str]

    @property
    def steps(self) -> list[tuple[str, str]]:
        """``(id, status)`` per step in order; rollback steps as ``↩ id``."""
        return [
            (("↩ " if record.rollback else "") + record.id, record.status.value)
            for record in self.report.records
        ]

    def record(self, step_id: str) -> Any:
        return next(record for record in self.report.records if record.id == step_id)

    def summary(self, step_id: str) -> str:
        summary: str = self.record(step_id).summary
        return summary

    def data(self, step_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.record(step_id).data
        return data

    @property
    def audited_steps(self) -> list[tuple[str, str]]:
        """``(id, status)`` of the audit's ``step`` rows, in the order they were written."""
        return [
            (("↩ " if row["detail"]["rollback"] else "") + row["detail"]["id"], row["detail"]["status"])
            for row in self.audit
            if row["action"] == "step"
        ]

    @property
    def actions(self) -> list[str]:
        return [row["action"] for row in self.audit]


@dataclass
class RunbookWorld:
    """firebell's configuration for one test, and runbooks run through ``RunbookService``."""

    directory: Path
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    clock: FakeClock = field(default_factory=FakeClock)
    _engine: AsyncEngine | None = None
    _service: RunbookService | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "firebell.toml"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.directory / 'firebell.db'}"

    def add(self, table: str, **values: Any) -> None:
        self.tables.setdefault(table, {}).update(values)

    def settings(self) -> Settings:
        write_toml(self.config_path, self.tables)
        return load_settings(
            {
                "FIREBELL_CONFIG": str(self.config_path),
                "FIREBELL_DATABASE_URL": self.database_url,
                **self.environ,
            }
        )

    async def service(self) -> RunbookService:
        """The service for the configuration as it is now (built once per test)."""
        if self._service is None:
            settings = self.settings()
            self._engine = create_engine(settings.database_url)
            await migrate(self._engine)
            self._service = RunbookService(
                self._engine,
                settings,
                self.clock,
                SecretStore(settings.environ, settings.config.runbooks.secrets_dir),
                ssl.create_default_context(),
            )
        return self._service

    async def run(
        self,
        name: str,
        params: dict[str, str] | None = None,
        *,
        interaction: RecordingInteraction | None = None,
    ) -> Finished:
        """Plan ``name`` (a shipped runbook, or a file), request it as alice, run it approved by bob."""
        service = await self.service()
        plan = service.plan(service.find(name), params or {})
        requested = await service.request(plan, origin="test", requested_by="alice")
        interaction = interaction or RecordingInteraction()
        report = await service.execute(
            requested.run_id,
            plan,
            actor="bob",
            runner="test",
            interaction=interaction,
            approved_by="bob",
        )
        row = await service.store.get(requested.run_id)
        assert row is not None
        audit = await service.store.audit_trail(requested.run_id)
        return Finished(requested.run_id, plan, report, row, audit, interaction.notes)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
