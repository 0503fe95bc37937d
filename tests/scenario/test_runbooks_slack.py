"""``/incident runbook …`` end to end: the plan with Run / Cancel, two-person
approval by the approver group, progress in a thread, the output file, the
timeline and the audit table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.runbooks import chat_flow, kinds
from tests.conftest import send_pagerduty
from tests.fakes import FakePagerDuty, FakeSlack
from tests.fakes.slack import SlackMessage
from tests.harness import FirebellServer
from tests.runbooks import scripted_kind
from tests.samples import pagerduty_event
from tests.scenario.room import Room

Start = Callable[[dict[str, str]], FirebellServer]
Env = Callable[..., dict[str, str]]
CHANNEL = "inc-1-checkout-api-error-rate-above-5"

FIX = """\
name: fix-checkout
description: Look, then change something (two people).
services: [checkout]
approval: {role: sre, two_person: true}
parameters:
  - name: target
  - name: token_name
    default: none
steps:
  - id: look
    kind: scripted
    args: {value: "{{ target }}", data: {status: 503}}
  - id: change
    kind: scripted
    args: {value: "{{ target }}", changes: true, secret: "{{ secret.FIX_TOKEN }}", output: "changed"}
    confirm: true
    when: look.data.status == 503
"""

LOOK = """\
name: look-only
description: Changes nothing.
steps:
  - id: look
    kind: scripted
    args: {value: looked}
"""


GATED = """\
name: gated
description: Stops for a go from the sre group.
steps:
  - id: look
    kind: scripted
    args: {value: before}
  - id: gate
    kind: approval
    args: {role: sre, prompt: "Drain next?"}
  - id: after
    kind: scripted
    args: {value: after}
"""


@pytest.fixture(autouse=True)
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    # The server runs in this process (a thread), so the test kind is visible to it.
    monkeypatch.setitem(kinds.KIND_MODULES, "scripted", "tests.runbooks.scripted_kind")
    scripted_kind.CALLS.clear()
    yield scripted_kind.CALLS


class ChannelRoom(Room):
    def plan_message(self) -> SlackMessage:
        plans = [m for m in self.slack.messages(self.channel) if m.text.startswith("Runbook ")]
        assert plans, "no plan message"
        return plans[-1]

    def run_button(self, message: SlackMessage) -> str:
        for block in message.blocks or []:
            for element in block.get("elements", []):
                if element.get("action_id") == chat_flow.ACTION_RUN:
                    return str(element["value"])
        raise AssertionError("no Run button")


@pytest.fixture
def room(
    slack: FakeSlack, pagerduty: FakePagerDuty, firebell_env: Env, start_firebell: Start, tmp_path: Path
) -> ChannelRoom:
    books = tmp_path / "books"
    books.mkdir()
    (books / "fix.yaml").write_text(FIX)
    (books / "look.yaml").write_text(LOOK)
    (books / "gated.yaml").write_text(GATED)
    slack.add_user("alice@acme.test", "Alice")
    sre = slack.add_usergroup("sre", ["U1REQ", "U2SRE"])
    pagerduty.add_incident("PGR0VU2")
    config: dict[str, dict[str, Any]] = {
        "runbooks": {"paths": [str(books)], "include_shipped": False},
        "runbooks.approvers": {"sre": [sre]},
    }
    env = firebell_env(config=config, FIX_TOKEN="tok-9f8e7d6c")
    firebell = start_firebell(env)
    send_pagerduty(firebell, pagerduty_event())
    slack.wait_for(lambda: slack.channel_by_name(CHANNEL) is not None)
    channel = slack.channel_by_name(CHANNEL)
    assert channel is not None
    return ChannelRoom(slack, firebell, channel.id)


def test_list_shows_the_runbooks_for_the_incident(room: ChannelRoom) -> None:
    answer = room.ask("runbook list", "U1ALICE")
    assert "fix-checkout" in answer["text"] and "look-only" in answer["text"]
    assert "target=…" in answer["text"]


def test_two_person_runbook_from_plan_to_audit(
    room: ChannelRoom, slack: FakeSlack, scripted: list[dict[str, Any]]
) -> None:
    requester, approver, bystander = "U1REQ", "U2SRE", "U3OTHER"
    smuggled = "web-2; rm -rf / $(id)"
    answer = room.ask(f"runbook run fix-checkout 'target={smuggled}'", requester)
    assert "plan for `fix-checkout` is in the channel" in answer["text"]
    plan = room.plan_message()
    plan_text = json.dumps(plan.blocks, ensure_ascii=False)
    assert "look: scripted" in plan_text and "⚠ changes something" in plan_text
    assert "other than the requester" in plan_text
    run_id = room.run_button(plan)

    refused = room.click(chat_flow.ACTION_RUN, run_id, requester)
    assert refused is not None and "someone else must approve" in refused
    slack.wait_for(lambda: "Waiting for approval" in json.dumps(room.plan_message().blocks))
    refused = room.click(chat_flow.ACTION_RUN, run_id, bystander)
    assert refused is not None and "`sre`" in refused
    assert scripted == []

    room.click(chat_flow.ACTION_RUN, run_id, approver)
    slack.wait_for(lambda: "succeeded" in json.dumps(room.plan_message().blocks), timeout=20)
    assert [call["value"] for call in scripted] == [smuggled, smuggled]  # one literal value, as typed
    assert scripted[1]["secret"] == "tok-9f8e7d6c"

    thread = slack.thread(room.channel, plan.ts)
    progress = thread[0]
    assert "✓ look" in progress.text and "✓ change" in progress.text and progress.edits
    files = [f for f in slack.files if f.filename == f"runbook-{run_id}-fix-checkout.txt"]
    assert len(files) == 1 and files[0].thread_ts == plan.ts
    content = (files[0].content or b"").decode()
    assert "changed token=[redacted]" in content and "tok-9f8e7d6c" not in content

    timeline = [text for kind, text in room.firebell.sql("select kind, text from timeline order by id")]
    assert any(t.startswith(f"Runbook fix-checkout requested (run #{run_id})") for t in timeline)
    assert any(t.startswith(f"Runbook fix-checkout succeeded (run #{run_id})") for t in timeline)
    audit = room.firebell.sql(f"select actor, action from runbook_audit where run_id = {run_id} order by id")
    actions = [action for _, action in audit]
    assert actions[:3] == ["requested", "awaiting_approval", "running"]
    assert actions[-1] == "succeeded" and actions.count("step") == 2
    assert (approver, "running") in audit
    assert room.firebell.sql(f"select status, approved_by from runbook_runs where id = {run_id}") == [
        ("succeeded", approver)
    ]
    assert "tok-9f8e7d6c" not in str(room.firebell.sql("select detail from runbook_audit"))


def test_cancel_before_running_runs_nothing(
    room: ChannelRoom, slack: FakeSlack, scripted: list[dict[str, Any]]
) -> None:
    room.ask("runbook run look-only", "U1REQ")
    run_id = room.run_button(room.plan_message())
    room.click(chat_flow.ACTION_CANCEL, run_id, "U1REQ")
    slack.wait_for(lambda: "Cancelled by" in json.dumps(room.plan_message().blocks))
    answer = room.click(chat_flow.ACTION_RUN, run_id, "U1REQ")
    assert answer is not None and "already cancelled" in answer
    assert scripted == []


def test_a_harmless_runbook_runs_for_the_requester(
    room: ChannelRoom, slack: FakeSlack, scripted: list[dict[str, Any]]
) -> None:
    room.ask("runbook run look-only", "U1REQ")
    run_id = room.run_button(room.plan_message())
    room.click(chat_flow.ACTION_RUN, run_id, "U1REQ")
    slack.wait_for(lambda: "succeeded" in json.dumps(room.plan_message().blocks), timeout=20)
    assert [call["value"] for call in scripted] == ["looked"]


def test_an_approval_step_waits_for_the_role(
    room: ChannelRoom, slack: FakeSlack, scripted: list[dict[str, Any]]
) -> None:
    room.ask("runbook run gated", "U3OTHER")
    plan = room.plan_message()
    room.click(chat_flow.ACTION_RUN, room.run_button(plan), "U3OTHER")

    def approve_button() -> dict[str, Any] | None:
        for message in slack.thread(room.channel, plan.ts):
            for block in message.blocks or []:
                for element in block.get("elements", []):
                    if element.get("action_id") == chat_flow.ACTION_APPROVE_STEP:
                        return dict(element)
        return None

    slack.wait_for(lambda: approve_button() is not None, timeout=20)
    assert [call["value"] for call in scripted] == ["before"]
    button = approve_button()
    assert button is not None
    refused = room.click(chat_flow.ACTION_APPROVE_STEP, button["value"], "U3OTHER")
    assert refused is not None and "`sre`" in refused
    room.click(chat_flow.ACTION_APPROVE_STEP, button["value"], "U2SRE")
    slack.wait_for(lambda: "succeeded" in json.dumps(room.plan_message().blocks), timeout=20)
    assert [call["value"] for call in scripted] == ["before", "after"]
    progress = slack.thread(room.channel, plan.ts)[0]
    assert "approved by U2SRE" in progress.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("runbook run nope", "No runbook named `nope`"),
        ("runbook run fix-checkout", "target is required"),
        ("runbook run fix-checkout target=a colour=blue", "unknown parameter colour"),
        ("runbook frobnicate", "is not `list` or `run`"),
    ],
)
def test_wrong_runbook_commands_get_a_helpful_answer(room: ChannelRoom, text: str, expected: str) -> None:
    answer = room.ask(text, "U1REQ")
    assert expected in answer["text"]


SAFE = """\
name: gather-facts
description: Reads only.
steps:
  - id: look
    kind: scripted
    args: {value: "{{ where }}"}
    automation_safe: true
parameters:
  - name: where
"""


def test_self_healing_runs_safe_runbooks_for_matching_alerts_only(
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    firebell_env: Env,
    start_firebell: Start,
    tmp_path: Path,
    scripted: list[dict[str, Any]],
) -> None:
    books = tmp_path / "books"
    books.mkdir()
    (books / "safe.yaml").write_text(SAFE)
    (books / "fix.yaml").write_text(FIX)
    pagerduty.add_incident("PGR0VU2")
    config: dict[str, Any] = {
        "runbooks": {
            "paths": [str(books)],
            "include_shipped": False,
            "automation": [
                {"runbook": "gather-facts", "service": "checkout", "params": {"where": "checkout-web"}},
                {"runbook": "gather-facts", "service": "search", "params": {"where": "never"}},
                {"runbook": "fix-checkout", "source": "pagerduty", "params": {"target": "x"}},
            ],
        },
        "runbooks.approvers": {"sre": ["S0"]},
    }
    firebell = start_firebell(firebell_env(config=config))
    send_pagerduty(firebell, pagerduty_event())
    slack.wait_for(lambda: slack.channel_by_name(CHANNEL) is not None)
    channel = slack.channel_by_name(CHANNEL)
    assert channel is not None

    def texts() -> str:
        return json.dumps([(m.text, m.blocks) for m in slack.messages(channel.id)], ensure_ascii=False)

    slack.wait_for(lambda: "succeeded" in texts() and "was not run" in texts(), timeout=20)
    assert [call["value"] for call in scripted] == ["checkout-web"]
    assert "asked for by firebell (self-healing)" in texts()
    assert "`fix-checkout` was not run: it has steps not marked automation_safe" in texts()
    assert firebell.sql("select runbook, origin, requested_by, status from runbook_runs") == [
        ("gather-facts", "automation", "firebell (self-healing)", "succeeded")
    ]
