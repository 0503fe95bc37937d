"""From a runbook and its parameters to a plan: every step with its resolved arguments.

The plan is what a person reviews before pressing Run, what the audit keeps,
and what the engine executes. Building it checks everything that can be
checked without touching a target: each step's arguments against its kind,
conditions, rollback references, and that every step that changes something
says ``confirm: true``. ``check_runbook`` runs the same checks with sample
parameter values, for ``firebell runbook validate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bot.errors import UserError
from bot.runbooks.conditions import Condition, path_lookup
from bot.runbooks.kinds import step_kind
from bot.runbooks.model import RunbookSpec, StepSpec
from bot.runbooks.params import SECRET_PREFIX, placeholders, resolve_params, sample_value, substitute
from bot.runbooks.step import RunbookStep, StepArgs


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a runbook: where (step, field) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class RunbookInvalid(UserError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class PlannedStep:
    spec: StepSpec
    kind: RunbookStep
    raw_args: dict[str, Any]
    """Arguments with parameters placed; ``{{ secret.X }}`` still unresolved."""
    args: StepArgs
    destructive: bool
    condition: Condition | None

    @property
    def id(self) -> str:
        return self.spec.id

    def describe(self) -> str:
        return self.kind.describe(self.args)


@dataclass(frozen=True)
class Plan:
    runbook: RunbookSpec
    params: dict[str, Any]
    steps: list[PlannedStep]
    rollback: dict[str, PlannedStep]

    @property
    def destructive(self) -> bool:
        return any(step.destructive for step in self.steps) or any(
            s.destructive for s in self.rollback.values()
        )

    def to_dict(self) -> dict[str, Any]:
        """What the audit keeps of the plan."""
        return {
            "runbook": self.runbook.name,
            "params": self.params,
            "steps": [_step_dict(step) for step in self.steps],
            "rollback": [_step_dict(step) for step in self.rollback.values()],
        }


def _step_dict(step: PlannedStep) -> dict[str, Any]:
    return {
        "id": step.id,
        "kind": step.spec.kind,
        "args": step.raw_args,
        "destructive": step.destructive,
        "when": step.spec.when,
        "on_failure": step.spec.on_failure,
    }


def build_plan(
    spec: RunbookSpec,
    given: Mapping[str, str],
    *,
    hosts: Sequence[str],
    services: Sequence[str],
) -> Plan:
    """The plan for ``given`` parameters; ``UserError`` for bad parameters,
    ``RunbookInvalid`` for a runbook that cannot run as written."""
    params = resolve_params(spec, given, hosts=hosts, services=services)
    return _plan(spec, params, prune=True)


def check_runbook(spec: RunbookSpec, *, hosts: Sequence[str], services: Sequence[str]) -> list[Problem]:
    """Everything wrong with ``spec`` that shows without running it."""
    params = {p.name: sample_value(p, hosts, services) for p in spec.parameters}
    try:
        _plan(spec, params, prune=False)
    except RunbookInvalid as exc:
        return exc.problems
    return []


def _plan(spec: RunbookSpec, params: dict[str, Any], *, prune: bool) -> Plan:
    problems: list[Problem] = []
    seen: set[str] = set()
    for step in spec.steps + spec.rollback:
        if step.id in seen:
            problems.append(Problem(f"step {step.id}", "id is used twice"))
        seen.add(step.id)
    rollback_ids = {step.id for step in spec.rollback}
    main = [step for step in spec.steps if not (prune and _ruled_out(step, params))]
    steps = _plan_steps(main, spec, params, problems, rollback_ids)
    rollback = _plan_steps(spec.rollback, spec, params, problems, set())
    if problems:
        raise RunbookInvalid(problems)
    return Plan(spec, params, steps, {step.id: step for step in rollback})


def _ruled_out(step: StepSpec, params: dict[str, Any]) -> bool:
    """A step whose condition reads only parameters, and is false for these:
    it leaves the plan, so the plan shows what will really run."""
    if step.when is None:
        return False
    try:
        condition = Condition(step.when)
    except UserError:
        return False  # reported by _plan_steps
    if not all(name.startswith("params.") for name in condition.names()):
        return False
    return not condition.evaluate(path_lookup({"params": params}))


def _plan_steps(
    specs: Sequence[StepSpec],
    runbook: RunbookSpec,
    params: dict[str, Any],
    problems: list[Problem],
    rollback_ids: set[str],
) -> list[PlannedStep]:
    planned: list[PlannedStep] = []
    # Steps a condition may read: every step before it in the file, including
    # ones this plan left out (they read as skipped).
    order = [step.id for step in runbook.steps]
    for spec in specs:
        earlier = set(order[: order.index(spec.id)]) if spec.id in order else set()
        where = f"step {spec.id}"
        before = len(problems)
        try:
            kind = step_kind(spec.kind)
        except UserError as exc:
            problems.append(Problem(f"{where}: kind", str(exc)))
            continue
        for name in sorted(placeholders(spec.args)):
            if not name.startswith(SECRET_PREFIX) and runbook.parameter(name) is None:
                problems.append(
                    Problem(f"{where}: args", f"{{{{ {name} }}}} is not a parameter of this runbook")
                )
        condition = _condition(spec, where, runbook, earlier, problems)
        _check_rollback(spec, where, rollback_ids, problems)
        raw_args = substitute(spec.args, params)
        try:
            args = kind.args_model.model_validate(raw_args)
        except ValidationError as exc:
            unset = sorted(
                name
                for name in placeholders(spec.args)
                if not name.startswith(SECRET_PREFIX) and params.get(name) is None
            )
            if unset:
                # An optional parameter this step needs was left out: say which.
                given = " ".join(f"{name}=…" for name in unset)
                problems.append(Problem(where, f"needs {', '.join(unset)} (give {given})"))
                continue
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"])
                problems.append(
                    Problem(f"{where}: args.{field}" if field else f"{where}: args", error["msg"])
                )
            continue
        except UserError as exc:
            problems.append(Problem(f"{where}: args", str(exc)))
            continue
        destructive = kind.destructive(args)
        if destructive and not spec.confirm:
            problems.append(
                Problem(
                    f"{where}: confirm", f"`{spec.kind}` step changes something here: add `confirm: true`"
                )
            )
        if len(problems) == before:
            planned.append(PlannedStep(spec, kind, raw_args, args, destructive, condition))
    return planned


def _condition(
    spec: StepSpec, where: str, runbook: RunbookSpec, earlier: set[str], problems: list[Problem]
) -> Condition | None:
    if spec.when is None:
        return None
    try:
        condition = Condition(spec.when)
    except UserError as exc:
        problems.append(Problem(f"{where}: when", str(exc)))
        return None
    for name in condition.names():
        root, _, rest = name.partition(".")
        if root == "params":
            if runbook.parameter(rest) is None:
                problems.append(Problem(f"{where}: when", f"`{name}`: no parameter `{rest}`"))
        elif root not in earlier:
            problems.append(
                Problem(f"{where}: when", f"`{name}`: `{root}` is not an earlier step (or `params.`)")
            )
    return condition


def _check_rollback(spec: StepSpec, where: str, rollback_ids: set[str], problems: list[Problem]) -> None:
    if spec.on_failure == "rollback" and not spec.rollback:
        problems.append(Problem(f"{where}: rollback", "on_failure: rollback names no rollback steps"))
    if spec.rollback and spec.on_failure != "rollback":
        problems.append(Problem(f"{where}: rollback", "rollback steps only run with on_failure: rollback"))
    for name in spec.rollback:
        if name not in rollback_ids:
            problems.append(Problem(f"{where}: rollback", f"`{name}` is not a step under `rollback:`"))
