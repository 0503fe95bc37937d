"""What every runbook step kind provides, and what it is given to run.

A step kind validates its arguments with a pydantic model (``args_model``),
says in one line what it will do (``describe``, shown in the plan before
anything runs), says whether that is destructive (such steps need approval),
and runs. Arguments arrive with parameters already substituted into their
*values*: a kind passes them to APIs, sockets or as argv elements, never into
a shell string.

A kind raises ``UserError`` for something the runbook or its parameters got
wrong and ``IntegrationError`` when the target failed or could not be reached;
a step that ran but found a bad state returns ``StepOutcome(ok=False, …)``.
The engine enforces the step's timeout by cancelling ``run``; kinds must leave
nothing behind when cancelled (close connections in ``finally``/``async with``).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel

from bot.clock import Clock
from bot.errors import UserError
from bot.runbooks.config import RunbooksConfig
from bot.runbooks.secrets import SecretStore
from bot.settings import Settings

T = TypeVar("T")


def wait_budget(requested: float | None, step_timeout: float, *, margin: float = 10.0) -> float:
    """Seconds a wait inside a step may take so the step still ends, with its
    report (log tail, pods, stats), before the engine cancels it."""
    available = max(step_timeout - min(margin, step_timeout * 0.2), 0.0)
    return available if requested is None else max(0.0, min(requested, available))


def named_target(
    section: Mapping[str, T], name: str | None, *, kind: str, table: str, what: str
) -> tuple[str, T]:
    """The target called ``name`` under ``[runbooks.<table>]``; without a name,
    ``default`` or the only one configured."""
    known = ", ".join(sorted(section)) or "none configured"
    if name is None:
        if "default" in section:
            name = "default"
        elif len(section) == 1:
            name = next(iter(section))
        else:
            raise UserError(f"{kind} step needs `{what}`: one of [runbooks.{table}] ({known})")
    target = section.get(name)
    if target is None:
        raise UserError(f"no {kind} {what} {name!r} under [runbooks.{table}] ({known})")
    return name, target


class StepArgs(BaseModel):
    """Base of every kind's argument model: unknown arguments are errors."""

    model_config = {"extra": "forbid"}


@dataclass
class StepOutcome:
    ok: bool
    summary: str
    """One short line for the progress message (≤ 200 characters is best)."""
    output: str = ""
    """Everything worth keeping (goes into the run's output file); secrets are
    redacted by the engine, but kinds should not echo credentials anyway."""
    data: dict[str, Any] = field(default_factory=dict)
    """Facts later steps' conditions may use, e.g. ``{"status": 503}``."""


@dataclass
class StepContext:
    config: RunbooksConfig
    secrets: SecretStore
    clock: Clock
    ssl_context: ssl.SSLContext
    """For outgoing HTTPS (honours ``SSL_CERT_FILE``)."""
    timeout: float
    """Seconds this step may take in all; waits inside a step should stay below it."""
    results: Mapping[str, StepOutcome] = field(default_factory=dict)
    """Outcomes of earlier steps, by step id."""
    incident_service: str | None = None
    """The incident's service, when run for an incident."""
    settings: Settings | None = None
    """The whole configuration, for kinds that reuse other engines (``diag``)."""
    open_network: bool = False
    """HTTP steps may reach any address (the command line trusts its operator);
    otherwise they are held to ``[diagnostics]`` ``allow_hosts``/``allow_cidrs``
    like ``/incident diag``."""
    interaction: Interaction | None = None
    """Posting to the incident channel and waiting for approvals (``notify``, ``approval``)."""


class Interaction(Protocol):
    """What a run can do with the people around it (Slack or a terminal)."""

    async def notify(self, text: str) -> None: ...

    async def approval(self, role: str | None, prompt: str) -> str:
        """Wait until someone with ``role`` approves; their name. ``UserError`` when refused."""
        ...


class RunbookStep(Protocol):
    """One step kind."""

    kind: ClassVar[str]
    args_model: ClassVar[type[StepArgs]]

    def describe(self, args: Any) -> str:
        """One line, with the resolved arguments, for the plan."""
        ...

    def destructive(self, args: Any) -> bool:
        """Whether this step changes something (restart, drain, purge…)."""
        ...

    async def run(self, args: Any, context: StepContext) -> StepOutcome: ...
