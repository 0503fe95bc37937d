"""The shape of a runbook file, as read from YAML, before anything is resolved.

A runbook has a name, a description, typed parameters and ordered steps,
plus optional rollback steps that a failing step can name. Parameters reach
steps only through ``{{ name }}`` placeholders inside argument *values*;
``{{ secret.NAME }}`` names a secret, resolved only when the step runs.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
STEP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class _Strict(BaseModel):
    model_config = {"extra": "forbid"}


ParameterType = Literal["string", "int", "bool", "choice", "host", "service", "url"]


class Parameter(_Strict):
    name: str
    type: ParameterType = "string"
    description: str = ""
    default: str | int | bool | None = None
    required: bool = True
    """Without a default, a required parameter must be given."""
    choices: list[str] = Field(default_factory=list)
    pattern: str | None = None
    """string: a regular expression the whole value must match."""
    min: int | None = None
    max: int | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PARAM_NAME.match(value):
            raise ValueError("lower-case letters, digits and _, starting with a letter")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _shape(self) -> Parameter:
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice parameter needs `choices`")
        if self.type != "choice" and self.choices:
            raise ValueError("`choices` only go with type choice")
        return self


OnFailure = Literal["stop", "continue", "rollback"]


class StepSpec(_Strict):
    id: str
    kind: str
    description: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(default=120, gt=0, le=3600)
    """Seconds; the step is cancelled after that and counts as failed."""
    confirm: bool = False
    """Must be true on a step that changes something (the kind says which do)."""
    when: str | None = None
    """A condition on earlier results or parameters; the step is skipped when false."""
    on_failure: OnFailure = "stop"
    rollback: list[str] = Field(default_factory=list)
    """With ``on_failure: rollback``: ids of steps under ``rollback:`` to run, in order."""
    automation_safe: bool = False
    """May run without a person (self-healing) — the author vouches for it."""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not STEP_ID.match(value):
            raise ValueError("lower-case letters, digits, - and _")
        return value


class Approval(_Strict):
    role: str | None = None
    """Approver role from ``[runbooks.approvers]``; without one, the requester may run it."""
    two_person: bool = False
    """Someone other than the requester must approve destructive steps."""


class RunbookSpec(_Strict):
    name: str
    description: str
    services: list[str] = Field(default_factory=list)
    """Services it applies to (``/incident runbook list``); empty: all."""
    approval: Approval = Field(default_factory=Approval)
    parameters: list[Parameter] = Field(default_factory=list)
    steps: list[StepSpec] = Field(min_length=1)
    rollback: list[StepSpec] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("lower-case letters, digits and -, at most 63")
        return value

    @property
    def automation_safe(self) -> bool:
        return all(step.automation_safe for step in self.steps + self.rollback)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)
