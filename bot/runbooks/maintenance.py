"""The maintenance flag file: switching a site's maintenance page on and off.

The shipped web-server snippets (``runbooks/maintenance/``) answer 503 with
the static maintenance page whenever the flag file exists; this module owns
creating it (atomically: a temporary file in the same directory, then a
rename, so the web server never sees a half-written flag), removing it and
reading it back. The file's content is informational — who switched it on,
when, why — and is never parsed by the web server.

Local files only; a site on another host goes through the SSH step runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.errors import IntegrationError, UserError
from bot.runbooks.config import SshHost
from bot.runbooks.ssh import run_command

_MAX_MESSAGE = 1000


@dataclass(frozen=True)
class MaintenanceState:
    flag_file: Path
    on: bool
    since: datetime | None = None
    message: str | None = None
    retry_after_seconds: int | None = None
    changed: bool = False
    """Whether the call that returned this changed anything."""


def _os_error(action: str, path: Path, exc: OSError) -> IntegrationError:
    if isinstance(exc, PermissionError):
        return IntegrationError(
            f"no permission to {action} the maintenance flag {path}",
            retryable=False,
            code="permission_denied",
        )
    return IntegrationError(
        f"cannot {action} the maintenance flag {path}: {exc.strerror or exc}",
        retryable=False,
        code="io_error",
    )


def _read(path: Path) -> MaintenanceState:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return MaintenanceState(path, on=False)
    except IsADirectoryError as exc:
        raise UserError(f"maintenance flag {path} is a directory; flag_file must name a file") from exc
    except OSError as exc:
        raise _os_error("read", path, exc) from exc
    # Operators also switch maintenance on by hand (`touch`): any content, even none, means on.
    details: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        loaded = json.loads(text) if text.strip() else {}
        if isinstance(loaded, dict):
            details = loaded
    since: datetime | None = None
    if isinstance(details.get("since"), str):
        with contextlib.suppress(ValueError):
            since = datetime.fromisoformat(details["since"])
    message = details.get("message")
    retry_after = details.get("retry_after_seconds")
    return MaintenanceState(
        path,
        on=True,
        since=since,
        message=message if isinstance(message, str) else None,
        retry_after_seconds=retry_after if isinstance(retry_after, int) else None,
    )


def _write(path: Path, content: str) -> None:
    directory = path.parent
    if not directory.is_dir():
        raise UserError(f"the directory of maintenance flag {path} does not exist")
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; the web server's user must be able to see the flag.
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


class MaintenanceFlag:
    """A site's flag file on this machine."""

    def __init__(self, flag_file: str | Path) -> None:
        self.path = Path(flag_file).expanduser()
        if not self.path.is_absolute():
            raise UserError(f"maintenance flag_file {str(flag_file)!r} must be an absolute path")

    async def status(self) -> MaintenanceState:
        """Whether the flag exists, with what was written into it."""
        return await asyncio.to_thread(_read, self.path)

    async def switch_on(
        self, *, now: datetime, message: str | None = None, retry_after_seconds: int | None = None
    ) -> MaintenanceState:
        """Create (or rewrite) the flag file atomically."""
        if message is not None and len(message) > _MAX_MESSAGE:
            raise UserError(f"maintenance message is longer than {_MAX_MESSAGE} characters")
        if retry_after_seconds is not None and retry_after_seconds < 1:
            raise UserError("retry_after_seconds must be at least 1")
        before = await self.status()
        content: dict[str, Any] = {"since": now.isoformat()}
        if message is not None:
            content["message"] = message
        if retry_after_seconds is not None:
            content["retry_after_seconds"] = retry_after_seconds
        try:
            await asyncio.to_thread(_write, self.path, json.dumps(content, indent=2) + "\n")
        except OSError as exc:
            raise _os_error("write", self.path, exc) from exc
        return MaintenanceState(
            self.path,
            on=True,
            since=now,
            message=message,
            retry_after_seconds=retry_after_seconds,
            changed=not before.on,
        )

    async def switch_off(self) -> MaintenanceState:
        """Remove the flag file; already off is not an error (``changed`` is false)."""
        try:
            await asyncio.to_thread(self.path.unlink)
        except FileNotFoundError:
            return MaintenanceState(self.path, on=False, changed=False)
        except IsADirectoryError as exc:
            raise UserError(
                f"maintenance flag {self.path} is a directory; flag_file must name a file"
            ) from exc
        except OSError as exc:
            raise _os_error("remove", self.path, exc) from exc
        return MaintenanceState(self.path, on=False, changed=True)


class RemoteMaintenanceFlag:
    """A site's flag file on an inventory host, switched over SSH.

    Three fixed commands, each an argv (the path is the operator's, still
    quoted element by element): ``test -e``, ``touch --`` and ``rm -f --``.
    The remote flag is an empty file: the snippets only check that it exists.
    """

    def __init__(self, host: SshHost, host_name: str, flag_file: str) -> None:
        if not flag_file.startswith("/"):
            raise UserError(f"maintenance flag_file {flag_file!r} must be an absolute path")
        self.path = Path(flag_file)
        self._host = host
        self._name = host_name

    async def _run(self, *argv: str) -> int:
        result = await run_command(self._host, list(argv), name=self._name)
        if result.exit_status not in (0, 1):
            raise IntegrationError(
                f"{self._name}: `{' '.join(argv)}` failed ({result.describe_exit()}): "
                f"{result.stderr.strip()}",
                retryable=False,
            )
        return result.exit_status

    async def status(self) -> MaintenanceState:
        return MaintenanceState(self.path, on=await self._run("test", "-e", str(self.path)) == 0)

    async def switch_on(
        self, *, now: datetime, message: str | None = None, retry_after_seconds: int | None = None
    ) -> MaintenanceState:
        before = await self.status()
        if await self._run("touch", "--", str(self.path)) != 0:
            raise IntegrationError(f"{self._name}: cannot create {self.path}", retryable=False)
        return MaintenanceState(self.path, on=True, since=now, message=message, changed=not before.on)

    async def switch_off(self) -> MaintenanceState:
        before = await self.status()
        if await self._run("rm", "-f", "--", str(self.path)) != 0:
            raise IntegrationError(f"{self._name}: cannot remove {self.path}", retryable=False)
        return MaintenanceState(self.path, on=False, changed=before.on)
