"""Findings shared by the infrastructure diagnostics (timeouts, resources, monitors).

A finding is one plain-words observation with a severity, what it is about and,
when it comes from a file, where (``file:line``). The diagnostics only produce
values; callers decide how to show them (table, JSON, Slack).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How much a finding matters; ordered ``info`` < ``warning`` < ``critical``."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class SourceRef:
    """A place in a configuration file."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation.

    ``kind`` is a stable machine-readable code (tests and JSON consumers match
    on it); ``message`` says what was seen, ``explanation`` why it matters.
    """

    kind: str
    severity: Severity
    subject: str
    message: str
    explanation: str = ""
    where: SourceRef | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity.value,
            "subject": self.subject,
            "message": self.message,
            "explanation": self.explanation,
            "where": str(self.where) if self.where is not None else None,
        }


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Worst first, then by place, so output is stable between runs."""
    return sorted(
        findings,
        key=lambda f: (
            -f.severity.rank,
            f.where.file if f.where else "",
            f.where.line if f.where else 0,
            f.kind,
            f.subject,
        ),
    )


def format_seconds(seconds: float | None) -> str:
    """A duration as people write it in configs: ``90s``, ``1m30s``, ``500ms``, ``∞``."""
    if seconds is None:
        return "∞"
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class ConfigSetting:
    """One effective configuration value: where it was set, or a built-in default.

    ``seconds`` is ``None`` when the value means "no limit" (HAProxy's missing
    or zero timeouts).
    """

    name: str
    seconds: float | None
    raw: str
    where: SourceRef | None = None

    @property
    def is_default(self) -> bool:
        return self.where is None

    def describe(self) -> str:
        """``proxy_read_timeout 30s`` (conf/app.conf:12) or ``proxy_read_timeout`` (default 60s)."""
        if self.where is None:
            return f"{self.name} (default {self.raw})"
        return f"{self.name} {self.raw} ({self.where})"

    @property
    def spelled(self) -> str:
        """The setting without its place: ``proxy_read_timeout 30s`` or ``… (default 60s)``."""
        return f"{self.name} (default {self.raw})" if self.where is None else f"{self.name} {self.raw}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": self.seconds,
            "raw": self.raw,
            "where": str(self.where) if self.where is not None else None,
            "default": self.is_default,
        }
