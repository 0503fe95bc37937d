"""The runbook core: parameters, plans, conditions, and running with failures,
rollback, timeouts, cancellation and redaction."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from bot.clock import SystemClock
from bot.errors import UserError
from bot.runbooks import kinds
from bot.runbooks.conditions import Condition, path_lookup
from bot.runbooks.config import RunbooksConfig
from bot.runbooks.engine import RunbookEngine, RunStatus, StepStatus
from bot.runbooks.model import RunbookSpec
from bot.runbooks.plan import build_plan, check_runbook
from bot.runbooks.runs import approval_refusal
from bot.runbooks.secrets import REDACTED, SecretStore
from bot.runbooks.step import StepContext
from tests.runbooks import scripted_kind


@pytest.fixture(autouse=True)
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    monkeypatch.setitem(kinds.KIND_MODULES, "scripted", "tests.runbooks.scripted_kind")
    scripted_kind.CALLS.clear()
    yield scripted_kind.CALLS


def spec(steps: list[dict[str, Any]], **extra: Any) -> RunbookSpec:
    return RunbookSpec.model_validate({"name": "test", "description": "t", "steps": steps, **extra})


def engine(secrets: SecretStore | None = None) -> RunbookEngine:
    context = StepContext(
        config=RunbooksConfig(),
        secrets=secrets or SecretStore({}),
        clock=SystemClock(),
        ssl_context=ssl.create_default_context(),
        timeout=10,
    )
    return RunbookEngine(context)


def plan(runbook: RunbookSpec, **given: str) -> Any:
    return build_plan(runbook, given, hosts=["web-1"], services=["checkout"])


# -- conditions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("probe.ok == false", True),
        ("probe.data.status in [502, 503, 504] and params.purge == true", True),
        ("not probe.ok or later.skipped", True),
        ("probe.data.status >= 500 and probe.data.status < 600", True),
        ("params.name == 'web' or params.name == \"api\"", True),
        ("probe.data.missing == null", True),
        ("probe.data.missing > 3", False),
        ("(probe.ok or params.purge) and not params.purge", False),
    ],
)
def test_conditions(source: str, expected: bool) -> None:
    roots = {
        "params": {"purge": True, "name": "web"},
        "probe": {"ok": False, "data": {"status": 503}},
        "later": {"skipped": False},
    }
    assert Condition(source).evaluate(path_lookup(roots)) is expected


@pytest.mark.parametrize("source", ["probe.ok ==", "__import__('os')", "a == 1 ]", "probe.ok; x", ""])
def test_bad_conditions_are_user_errors(source: str) -> None:
    with pytest.raises(UserError):
        Condition(source)


# -- parameters and plans ---------------------------------------------------------


def test_shell_syntax_in_a_parameter_stays_one_literal_value() -> None:
    runbook = spec(
        [{"id": "a", "kind": "scripted", "args": {"value": "{{ name }}", "output": "host={{ name }}"}}],
        parameters=[{"name": "name"}],
    )
    smuggled = "x; rm -rf / $(id) `whoami` && echo"
    planned = plan(runbook, name=smuggled)
    assert planned.steps[0].raw_args == {"value": smuggled, "output": f"host={smuggled}"}


def test_parameters_are_checked_by_type() -> None:
    runbook = spec(
        [{"id": "a", "kind": "scripted", "args": {"value": "n={{ n }}"}}],
        parameters=[
            {"name": "n", "type": "int", "min": 1, "max": 5},
            {"name": "host", "type": "host", "required": False},
            {"name": "mode", "type": "choice", "choices": ["fast", "slow"], "default": "fast"},
        ],
    )
    with pytest.raises(UserError) as caught:
        plan(runbook, n="9", host="db-9", mode="medium", extra="1")
    message = str(caught.value)
    assert "unknown parameter extra" in message
    assert "n: at most 5" in message
    assert "`db-9` is not an inventory host (web-1)" in message
    assert "mode: one of fast, slow" in message
    with pytest.raises(UserError, match="control characters"):
        plan(runbook, n="1", mode="fast\nrm")
    assert plan(runbook, n="3").params == {"n": 3, "host": None, "mode": "fast"}


def test_check_reports_each_problem_with_its_step_and_field() -> None:
    runbook = spec(
        [
            {"id": "a", "kind": "scripted", "args": {"changes": True, "value": "{{ nope }}"}},
            {"id": "b", "kind": "scripted", "args": {"unknown_arg": 1}, "when": "c.ok == true"},
            {"id": "c", "kind": "teleport"},
            {"id": "d", "kind": "scripted", "on_failure": "rollback", "rollback": ["undo"]},
        ]
    )
    problems = [str(p) for p in check_runbook(runbook, hosts=[], services=[])]
    assert "step a: args: {{ nope }} is not a parameter of this runbook" in problems
    assert "step a: confirm: `scripted` step changes something here: add `confirm: true`" in problems
    assert any(p.startswith("step b: when: `c.ok`: `c` is not an earlier step") for p in problems)
    assert any(p.startswith("step b: args.unknown_arg:") for p in problems)
    assert any(p.startswith("step c: kind: unknown step kind `teleport`") for p in problems)
    assert "step d: rollback: `undo` is not a step under `rollback:`" in problems


def test_a_missing_optional_parameter_a_step_needs_is_named() -> None:
    runbook = spec(
        [{"id": "purge", "kind": "scripted", "args": {"value": "{{ url }}"}}],
        parameters=[{"name": "url", "required": False}],
    )
    with pytest.raises(UserError, match=r"step purge: needs url \(give url=…\)"):
        plan(runbook)


def test_steps_ruled_out_by_parameters_leave_the_plan() -> None:
    runbook = spec(
        [
            {"id": "docker", "kind": "scripted", "when": "params.method == 'docker'"},
            {"id": "systemd", "kind": "scripted", "when": "params.method == 'systemd'"},
            {"id": "after", "kind": "scripted", "when": "docker.ok == true"},
        ],
        parameters=[{"name": "method", "type": "choice", "choices": ["docker", "systemd"]}],
    )
    assert [s.id for s in plan(runbook, method="systemd").steps] == ["systemd", "after"]
    assert check_runbook(runbook, hosts=[], services=[]) == []


# -- running ------------------------------------------------------------------------


async def test_a_failure_stops_the_run_and_later_steps_do_not_run(scripted: list[dict[str, Any]]) -> None:
    runbook = spec(
        [
            {"id": "a", "kind": "scripted"},
            {"id": "b", "kind": "scripted", "args": {"ok": False}},
            {"id": "c", "kind": "scripted"},
        ]
    )
    report = await engine().run(plan(runbook))
    assert report.status is RunStatus.FAILED
    assert [r.status for r in report.records] == [StepStatus.OK, StepStatus.FAILED, StepStatus.NOT_RUN]
    assert len(scripted) == 2


async def test_continue_on_failure_and_conditions_on_earlier_results() -> None:
    runbook = spec(
        [
            {
                "id": "probe",
                "kind": "scripted",
                "args": {"ok": False, "data": {"status": 503}},
                "on_failure": "continue",
            },
            {"id": "fix", "kind": "scripted", "when": "probe.data.status == 503"},
            {"id": "skip-me", "kind": "scripted", "when": "probe.ok == true"},
        ]
    )
    report = await engine().run(plan(runbook))
    assert [r.status for r in report.records] == [StepStatus.FAILED, StepStatus.OK, StepStatus.SKIPPED]
    assert report.status is RunStatus.FAILED  # something failed, even though the run went on


async def test_failure_then_rollback(scripted: list[dict[str, Any]]) -> None:
    runbook = spec(
        [
            {
                "id": "drain",
                "kind": "scripted",
                "args": {"ok": False, "changes": True, "value": "drain"},
                "confirm": True,
                "on_failure": "rollback",
                "rollback": ["ready"],
            },
            {"id": "purge", "kind": "scripted"},
        ],
        rollback=[
            {"id": "ready", "kind": "scripted", "args": {"changes": True, "value": "ready"}, "confirm": True}
        ],
    )
    report = await engine().run(plan(runbook))
    assert [(r.id, r.status, r.rollback) for r in report.records] == [
        ("drain", StepStatus.FAILED, False),
        ("purge", StepStatus.NOT_RUN, False),
        ("ready", StepStatus.OK, True),
    ]
    assert [call["value"] for call in scripted] == ["drain", "ready"]


async def test_a_step_over_its_timeout_is_cancelled_and_fails() -> None:
    runbook = spec([{"id": "slow", "kind": "scripted", "args": {"sleep": 30}, "timeout": 0.2}])
    report = await engine().run(plan(runbook))
    assert report.records[0].status is StepStatus.FAILED
    assert report.records[0].summary == "timed out after 0.2 s"


async def test_cancel_stops_between_steps(scripted: list[dict[str, Any]]) -> None:
    runbook = spec([{"id": f"s{n}", "kind": "scripted"} for n in range(4)])
    asked = False

    async def cancelled() -> bool:
        return asked

    async def on_change(report: Any) -> None:
        nonlocal asked
        asked = asked or report.records[1].status is StepStatus.OK

    report = await engine().run(plan(runbook), on_change=on_change, cancelled=cancelled)
    assert report.status is RunStatus.CANCELLED
    assert [r.status for r in report.records] == [
        StepStatus.OK,
        StepStatus.OK,
        StepStatus.NOT_RUN,
        StepStatus.NOT_RUN,
    ]
    assert len(scripted) == 2


async def test_secrets_are_resolved_only_to_run_and_redacted_from_output(
    scripted: list[dict[str, Any]],
) -> None:
    runbook = spec([{"id": "a", "kind": "scripted", "args": {"secret": "{{ secret.API_TOKEN }}"}}])
    planned = plan(runbook)
    assert planned.steps[0].raw_args == {"secret": "{{ secret.API_TOKEN }}"}
    assert "s3cr3t-value" not in str(planned.to_dict())
    report = await engine(SecretStore({"API_TOKEN": "s3cr3t-value"})).run(planned)
    assert scripted[0]["secret"] == "s3cr3t-value"
    assert report.records[0].output == f" token={REDACTED}"
    assert "s3cr3t-value" not in report.outputs()


async def test_a_missing_secret_fails_the_step_with_its_name() -> None:
    runbook = spec([{"id": "a", "kind": "scripted", "args": {"secret": "{{ secret.NOPE }}"}}])
    report = await engine().run(plan(runbook))
    assert report.records[0].status is StepStatus.FAILED
    assert "secret NOPE is not set" in report.records[0].summary


# -- approval rule ------------------------------------------------------------------


def test_who_may_start_a_run() -> None:
    changing = [{"id": "a", "kind": "scripted", "args": {"changes": True}, "confirm": True}]
    two = spec(changing, approval={"role": "sre", "two_person": True})
    planned = plan(two)
    assert "second person" in (
        approval_refusal(two, planned, requested_by="U1", approver="U1", approver_in_role=True) or ""
    )
    assert "`sre`" in (
        approval_refusal(two, planned, requested_by="U1", approver="U2", approver_in_role=False) or ""
    )
    assert approval_refusal(two, planned, requested_by="U1", approver="U2", approver_in_role=True) is None
    harmless = spec([{"id": "a", "kind": "scripted"}], approval={"role": "sre", "two_person": True})
    assert (
        approval_refusal(harmless, plan(harmless), requested_by="U1", approver="U1", approver_in_role=False)
        is None
    )
