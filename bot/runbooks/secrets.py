"""Named secrets for runbook steps, and their redaction from every output.

Runbooks and configuration name secrets (``CLOUDFLARE_TOKEN``); the value
comes from the environment or from a file of that name in ``secrets_dir``
(for example systemd's ``$CREDENTIALS_DIRECTORY`` or a mounted Kubernetes
secret). Every value handed out is remembered, and ``redact`` replaces it in
any text before that text is shown, stored or logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bot.errors import UserError

_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
REDACTED = "[redacted]"


class SecretStore:
    def __init__(self, environ: Mapping[str, str], secrets_dir: str | None = None) -> None:
        self._environ = environ
        self._dir = Path(secrets_dir).expanduser() if secrets_dir else None
        self._handed_out: set[str] = set()

    def get(self, name: str) -> str:
        """The secret's value; ``UserError`` naming where it was looked for when missing."""
        if not _SECRET_NAME.match(name):
            raise UserError(f"{name!r} is not a valid secret name (letters, digits and _)")
        value = self._environ.get(name)
        if value is None and self._dir is not None:
            path = self._dir / name
            if path.is_file():
                value = path.read_text(encoding="utf-8").strip()
        if not value:
            where = f"the environment or {self._dir}" if self._dir else "the environment"
            raise UserError(f"secret {name} is not set (looked in {where})")
        self._handed_out.add(value)
        return value

    def redact(self, text: str) -> str:
        """``text`` with every secret handed out so far replaced by ``[redacted]``."""
        # Longest first, so a secret that contains another is replaced whole.
        for value in sorted(self._handed_out, key=len, reverse=True):
            if len(value) >= 4:
                text = text.replace(value, REDACTED)
        return text
