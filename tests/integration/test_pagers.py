"""The pager adapters driven directly against the fake PagerDuty and Opsgenie APIs.

``PagerDutyPager`` goes through the official ``pagerduty`` client over TLS;
``OpsgeniePager`` through httpx. Every ``Pager`` method is exercised on its
success path and on its main failure, checking what reached the fake and how
errors come out (``IntegrationError`` with ``retryable`` set for 429/5xx only).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import pagerduty as pagerduty_client
import pytest

from bot.errors import IntegrationError
from bot.pagers.opsgenie import OpsgeniePager
from bot.pagers.pagerduty import PagerDutyPager
from bot.ports import PageRequest
from tests.conftest import PD_FROM
from tests.fakes import FakeOpsgenie, FakePagerDuty, TlsMaterial

ALICE = "alice@acme.test"  # a PagerDuty user, on call at level 1
BOB = "bob@acme.test"  # on call at level 2
CAROL = "carol@acme.test"  # a PagerDuty user, not on call
SLACK_ONLY = "dave@acme.test"  # in Slack, not in PagerDuty
POLICY = "PPOLICY"
SERVICE = "PSERVICE"

REQUEST = PageRequest(
    dedup_key="firebell-42",
    title="Checkout API returns 503s",
    severity=1,
    service="checkout",
    description="Error rate above 20% since 14:02 UTC",
    target=SERVICE,
)

PagerCall = Callable[[Any], Awaitable[object]]


def _pd_pager(fake: FakePagerDuty, tls: TlsMaterial, from_email: str | None = PD_FROM) -> PagerDutyPager:
    return PagerDutyPager("pd-test-token", from_email, fake.url, tls.client_context())


@contextlib.asynccontextmanager
async def pd_pager_for(
    fake: FakePagerDuty, tls: TlsMaterial, from_email: str | None = PD_FROM
) -> AsyncIterator[PagerDutyPager]:
    pager = _pd_pager(fake, tls, from_email)
    try:
        yield pager
    finally:
        await pager.aclose()


@pytest.fixture
def pd(pagerduty: FakePagerDuty) -> Iterator[FakePagerDuty]:
    """The PagerDuty fake with a policy of two levels, a service on it and one incident."""
    pagerduty.add_escalation_policy(POLICY, "Checkout on-call")
    pagerduty.add_oncall(POLICY, ALICE, 1)
    pagerduty.add_oncall(POLICY, BOB, 2)
    pagerduty.add_user(CAROL, "Carol")
    pagerduty.add_service(SERVICE, "Checkout", escalation_policy_id=POLICY)
    pagerduty.add_incident("PX", service_id=SERVICE, escalation_policy_id=POLICY, assignee_emails=[ALICE])
    yield pagerduty
    assert not pagerduty.errors, pagerduty.errors


@pytest.fixture
async def pd_pager(pd: FakePagerDuty, tls: TlsMaterial) -> AsyncIterator[PagerDutyPager]:
    pager = _pd_pager(pd, tls)
    yield pager
    await pager.aclose()


@pytest.fixture
def og(opsgenie: FakeOpsgenie) -> Iterator[FakeOpsgenie]:
    opsgenie.add_alert("alert-1", alias="checkout-503", message="Checkout 503s")
    opsgenie.add_user(CAROL)
    yield opsgenie
    assert not opsgenie.errors, opsgenie.errors


@pytest.fixture
async def og_pager(og: FakeOpsgenie, tls: TlsMaterial) -> AsyncIterator[OpsgeniePager]:
    pager = OpsgeniePager(
        "og-test-key", og.url, tls.client_context(), lambda _: None, default_escalation="checkout-escalation"
    )
    yield pager
    await pager.aclose()


# ---------------------------------------------------------------------- PagerDuty: set_severity


async def test_pd_set_severity_sets_the_priority_named_after_the_sev(
    pd: FakePagerDuty, pd_pager: PagerDutyPager
) -> None:
    await pd_pager.set_severity("PX", 2, ALICE)
    await pd_pager.set_severity("PX", 1, SLACK_ONLY)

    state = pd.incident_state("PX")
    assert state.priority == "P1"
    # The actor is the requester when PagerDuty knows them, else the configured From.
    assert state.updates == [("priority", "P2", ALICE), ("priority", "P1", PD_FROM)]
    assert pd.incident("PX")["priority"]["summary"] == "P1"
    put = pd.calls("PUT /incidents/PX")[0]
    p2 = next(pid for pid, name in pd.priorities.items() if name == "P2")
    assert put.body == {
        "incident": {"type": "incident_reference", "priority": {"id": p2, "type": "priority_reference"}}
    }
    # Priorities are looked up once.
    assert len(pd.calls("GET /priorities")) == 1


@pytest.mark.parametrize(
    "options",
    [{"priorities_enabled": False}, {"priorities": ()}],
    ids=["feature-off-404", "empty-list"],
)
async def test_pd_set_severity_without_priorities_is_a_clear_permanent_error(
    tls: TlsMaterial, options: dict[str, Any]
) -> None:
    with FakePagerDuty(tls=tls, **options) as fake:
        fake.add_user(PD_FROM, "firebell bot")
        fake.add_incident("PX")
        async with pd_pager_for(fake, tls) as pager:
            with pytest.raises(IntegrationError) as failed:
                await pager.set_severity("PX", 1, None)
        assert not fake.calls("PUT /incidents/PX")
        assert not fake.errors
    assert failed.value.retryable is False
    assert "no incident priorities" in str(failed.value)


async def test_pd_set_severity_without_a_matching_priority_name(tls: TlsMaterial) -> None:
    with FakePagerDuty(tls=tls, priorities=("Critical", "High")) as fake:
        fake.add_user(PD_FROM, "firebell bot")
        fake.add_incident("PX")
        async with pd_pager_for(fake, tls) as pager:
            with pytest.raises(IntegrationError) as failed:
                await pager.set_severity("PX", 1, None)
    assert failed.value.retryable is False
    assert "no priority named P1" in str(failed.value) and "Critical" in str(failed.value)


# ---------------------------------------------------------------------- PagerDuty: escalate


async def test_pd_escalate_moves_to_the_next_level_until_the_last(
    pd: FakePagerDuty, pd_pager: PagerDutyPager
) -> None:
    # PagerDuty's incident object does not say its level: it is read from who
    # is assigned, compared with who is on call at each level.
    assert "escalation_level" not in pd.incident("PX")

    assert await pd_pager.escalate("PX", ALICE) == "escalated to level 2 of Checkout on-call"

    state = pd.incident_state("PX")
    assert state.escalation_level == 2
    assert [pd_user_email(pd, user_id) for user_id in state.assignments] == [BOB]
    assert state.updates == [("escalation_level", 2, ALICE)]
    assert pd.calls("PUT /incidents/PX")[0].body == {
        "incident": {"type": "incident_reference", "escalation_level": 2}
    }

    with pytest.raises(IntegrationError) as last:
        await pd_pager.escalate("PX", ALICE)
    assert last.value.retryable is False
    assert "already at the last level (2) of Checkout on-call" in str(last.value)
    assert len(pd.calls("PUT /incidents/PX")) == 1


async def test_pd_escalate_an_unknown_incident_is_permanent(pd_pager: PagerDutyPager) -> None:
    with pytest.raises(IntegrationError) as failed:
        await pd_pager.escalate("PNOPE", ALICE)
    assert (failed.value.retryable, failed.value.code) == (False, "404")


# ---------------------------------------------------------------------- PagerDuty: add_responder


async def test_pd_add_responder_keeps_the_current_assignees(
    pd: FakePagerDuty, pd_pager: PagerDutyPager
) -> None:
    await pd_pager.add_responder("PX", CAROL, ALICE)
    await pd_pager.add_responder("PX", CAROL.upper(), ALICE)  # already assigned: nothing to do

    state = pd.incident_state("PX")
    assert [pd_user_email(pd, user_id) for user_id in state.assignments] == [ALICE, CAROL]
    assert state.assigned_via == "direct_assignment"
    assert state.updates == [("assignments", [ALICE, CAROL], ALICE)]
    assert len(pd.calls("PUT /incidents/PX")) == 1


async def test_pd_add_responder_names_an_unknown_email(pd: FakePagerDuty, pd_pager: PagerDutyPager) -> None:
    with pytest.raises(IntegrationError) as failed:
        await pd_pager.add_responder("PX", SLACK_ONLY, ALICE)
    assert failed.value.retryable is False
    assert SLACK_ONLY in str(failed.value)
    assert not pd.calls("PUT /incidents/PX")

    # Once the person exists in PagerDuty, asking again works (no stale "unknown").
    pd.add_user(SLACK_ONLY, "Dave")
    await pd_pager.add_responder("PX", SLACK_ONLY, ALICE)
    assert SLACK_ONLY in pd.incident_state("PX").updates[-1][1]


# ---------------------------------------------------------------------- PagerDuty: page


async def test_pd_page_opens_an_incident_on_the_service(pd: FakePagerDuty, pd_pager: PagerDutyPager) -> None:
    incident_id = await pd_pager.page(REQUEST, SLACK_ONLY)

    state = pd.incident_state(incident_id)
    assert (state.title, state.service_id, state.incident_key) == (REQUEST.title, SERVICE, "firebell-42")
    assert (state.urgency, state.details, state.created_by) == ("high", REQUEST.description, PD_FROM)
    assert [pd_user_email(pd, user_id) for user_id in state.assignments] == [ALICE]
    post = pd.calls("POST /incidents")[0]
    assert post.headers["From"] == PD_FROM
    assert post.body == {
        "incident": {
            "type": "incident",
            "title": REQUEST.title,
            "service": {"id": SERVICE, "type": "service_reference"},
            "urgency": "high",
            "incident_key": "firebell-42",
            "body": {"type": "incident_body", "details": REQUEST.description},
        }
    }


async def test_pd_page_again_with_the_same_key_returns_the_open_incident(
    pd: FakePagerDuty, pd_pager: PagerDutyPager
) -> None:
    first = await pd_pager.page(REQUEST, ALICE)
    # PagerDuty refuses a second open incident with the same key (400); the
    # adapter answers with the open one, so a retried job pages once.
    again = await pd_pager.page(replace(REQUEST, title="retried"), ALICE)
    assert again == first
    assert len(pd.calls("POST /incidents")) == 2
    lookup = pd.calls("GET /incidents")[0]
    assert lookup.query["incident_key"] == "firebell-42"
    assert lookup.query_all["service_ids[]"] == [SERVICE]
    assert pd.incident_state(first).title == REQUEST.title  # the open one, unchanged

    # Once resolved, the same key opens a new incident.
    await pd_pager.set_status(first, "resolved", ALICE)
    third = await pd_pager.page(REQUEST, ALICE)
    assert third != first
    assert pd.incident_state(third).created_by == ALICE


async def test_pd_page_low_urgency_below_sev2_and_no_body_without_description(
    pd: FakePagerDuty, pd_pager: PagerDutyPager
) -> None:
    incident_id = await pd_pager.page(replace(REQUEST, severity=3, description=None), None)
    state = pd.incident_state(incident_id)
    assert (state.urgency, state.details) == ("low", None)
    assert "body" not in pd.calls("POST /incidents")[0].body["incident"]
    sev2 = await pd_pager.page(replace(REQUEST, dedup_key="firebell-43", severity=2), None)
    assert pd.incident_state(sev2).urgency == "high"


async def test_pd_page_an_unknown_service_is_permanent(pd: FakePagerDuty, pd_pager: PagerDutyPager) -> None:
    with pytest.raises(IntegrationError) as failed:
        await pd_pager.page(replace(REQUEST, target="PNOSERVICE"), ALICE)
    assert (failed.value.retryable, failed.value.code) == (False, "400")


# ---------------------------------------------------------------------- PagerDuty: errors


PD_CALLS: dict[str, Callable[[PagerDutyPager], Awaitable[object]]] = {
    "set_severity": lambda pager: pager.set_severity("PX", 1, ALICE),
    "escalate": lambda pager: pager.escalate("PX", ALICE),
    "add_responder": lambda pager: pager.add_responder("PX", CAROL, ALICE),
    "page": lambda pager: pager.page(REQUEST, ALICE),
}


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("method", list(PD_CALLS))
async def test_pd_server_errors_are_retryable(
    pd: FakePagerDuty, pd_pager: PagerDutyPager, method: str, status: int
) -> None:
    pd.fail_next("*", status=status)
    with pytest.raises(IntegrationError) as failed:
        await PD_CALLS[method](pd_pager)
    assert (failed.value.retryable, failed.value.code) == (True, str(status))
    # The next attempt goes through.
    await PD_CALLS[method](pd_pager)


@pytest.mark.parametrize("status", [400, 403])
@pytest.mark.parametrize("method", list(PD_CALLS))
async def test_pd_client_errors_are_not_retryable(
    pd: FakePagerDuty, pd_pager: PagerDutyPager, method: str, status: int
) -> None:
    pd.fail_next("*", status=status)
    with pytest.raises(IntegrationError) as failed:
        await PD_CALLS[method](pd_pager)
    assert (failed.value.retryable, failed.value.code) == (False, str(status))


async def test_pd_rate_limits_are_retried_briefly_then_handed_to_the_job_queue(
    pd: FakePagerDuty, pd_pager: PagerDutyPager, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two quick tries inside the client, then a retryable error: the job
    # queue backs off instead of a thread sleeping without limit.
    monkeypatch.setattr(pagerduty_client.RestApiV2Client, "sleep_timer", 0.01)
    pd.fail_next("PUT /incidents/PX", status=429, retry_after=1, times=2)
    await pd_pager.set_severity("PX", 3, ALICE)
    statuses = [call.fault.status if call.fault else 200 for call in pd.calls("PUT /incidents/PX")]
    assert statuses == [429, 429, 200]
    assert pd.incident_state("PX").priority == "P3"

    pd.fail_next("PUT /incidents/PX", status=429, retry_after=1, times=10)
    with pytest.raises(IntegrationError) as limited:
        await pd_pager.set_severity("PX", 2, ALICE)
    assert limited.value.retryable is True


async def test_pd_writes_without_a_from_address_fail_clearly(pd: FakePagerDuty, tls: TlsMaterial) -> None:
    async with pd_pager_for(pd, tls, from_email=None) as pager:
        with pytest.raises(IntegrationError) as failed:
            await pager.page(REQUEST, SLACK_ONLY)
        assert failed.value.retryable is False
        assert "PAGERDUTY_FROM_EMAIL" in str(failed.value)
        assert not pd.calls("POST /incidents")
        # A PagerDuty user as actor is From enough.
        assert await pager.escalate("PX", ALICE) == "escalated to level 2 of Checkout on-call"


def pd_user_email(fake: FakePagerDuty, user_id: str) -> str:
    return next(user.email for user in fake.users if user.id == user_id)


# ---------------------------------------------------------------------- Opsgenie: set_severity


async def test_og_set_severity_updates_the_priority(og: FakeOpsgenie, og_pager: OpsgeniePager) -> None:
    await og_pager.set_severity("alert-1", 1, CAROL)
    assert og.alert("alert-1").priority == "P1"
    call = og.calls("PUT /v2/alerts/alert-1/priority")[0]
    assert call.query == {"identifierType": "id"}
    assert call.json() == {"priority": "P1"}
    assert [action.success for action in og.actions("priority")] == [True]


async def test_og_set_severity_outside_p1_to_p5_is_permanent(
    og: FakeOpsgenie, og_pager: OpsgeniePager
) -> None:
    with pytest.raises(IntegrationError) as failed:
        await og_pager.set_severity("alert-1", 6, CAROL)
    assert failed.value.retryable is False
    assert not og.calls("PUT /v2/alerts/alert-1/priority")


# ---------------------------------------------------------------------- Opsgenie: escalate


async def test_og_escalate_to_the_configured_escalation(og: FakeOpsgenie, og_pager: OpsgeniePager) -> None:
    assert await og_pager.escalate("alert-1", CAROL) == "escalated to checkout-escalation"
    [escalation] = og.alert("alert-1").escalations
    assert escalation["escalation"] == {"name": "checkout-escalation", "type": "escalation"}
    assert (escalation["user"], escalation["source"]) == (CAROL, "firebell")
    assert og.alert("alert-1").notes[0]["note"] == "Escalated from Slack via firebell"


async def test_og_escalate_without_an_escalation_says_what_to_set(og: FakeOpsgenie, tls: TlsMaterial) -> None:
    pager = OpsgeniePager("og-test-key", og.url, tls.client_context(), lambda _: None)
    try:
        with pytest.raises(IntegrationError) as failed:
            await pager.escalate("alert-1", CAROL)
    finally:
        await pager.aclose()
    assert failed.value.retryable is False
    assert "set opsgenie_escalation" in str(failed.value)
    assert not og.calls("/v2/alerts/*/escalate")


# ---------------------------------------------------------------------- Opsgenie: add_responder


async def test_og_add_responder_adds_the_user(og: FakeOpsgenie, og_pager: OpsgeniePager) -> None:
    await og_pager.add_responder("alert-1", CAROL, None)
    assert og.alert("alert-1").responders == [{"type": "user", "username": CAROL}]
    body = og.calls("POST /v2/alerts/alert-1/responders")[0].json()
    assert body == {
        "responder": {"type": "user", "username": CAROL},
        "user": "firebell",
        "source": "firebell",
        "note": "Added from Slack via firebell",
    }


async def test_og_add_responder_unknown_user_fails_only_in_the_request_status(
    og: FakeOpsgenie, og_pager: OpsgeniePager
) -> None:
    # Opsgenie accepts the request (202) and fails it while processing: the
    # adapter cannot tell, the request status can.
    await og_pager.add_responder("alert-1", SLACK_ONLY, CAROL)
    [action] = og.actions("responders")
    assert action.success is False and SLACK_ONLY in str(action.failure)
    assert og.alert("alert-1").responders == []


# ---------------------------------------------------------------------- Opsgenie: page


async def test_og_page_creates_an_alert_for_the_team(og: FakeOpsgenie, og_pager: OpsgeniePager) -> None:
    request = replace(REQUEST, severity=2, target="checkout-team")
    assert await og_pager.page(request, CAROL) == "firebell-42"

    alert = og.alert_by_alias("firebell-42")
    assert alert is not None
    assert (alert.message, alert.description, alert.priority) == (REQUEST.title, REQUEST.description, "P2")
    assert alert.responders == [{"name": "checkout-team", "type": "team"}]
    assert (alert.details, alert.source) == ({"service": "checkout"}, "firebell")
    [action] = og.actions("create")
    assert action.success and action.identifier == "firebell-42"


async def test_og_page_cuts_long_titles_and_dedups_by_alias(
    og: FakeOpsgenie, og_pager: OpsgeniePager
) -> None:
    request = replace(REQUEST, title="x" * 200, description=None, target="checkout-team")
    assert await og_pager.page(request, None) == "firebell-42"
    assert await og_pager.page(request, None) == "firebell-42"

    alert = og.alert_by_alias("firebell-42")
    assert alert is not None
    assert len(alert.message) == 130 and alert.message.endswith("…")
    assert alert.count == 2
    assert len([a for a in og.alerts if a.alias == "firebell-42"]) == 1
    assert "description" not in og.calls("POST /v2/alerts")[0].json()


# ---------------------------------------------------------------------- Opsgenie: errors


OG_CALLS: dict[str, Callable[[OpsgeniePager], Awaitable[object]]] = {
    "set_severity": lambda pager: pager.set_severity("alert-1", 1, CAROL),
    "escalate": lambda pager: pager.escalate("alert-1", CAROL),
    "add_responder": lambda pager: pager.add_responder("alert-1", CAROL, None),
    "page": lambda pager: pager.page(REQUEST, CAROL),
}


@pytest.mark.parametrize(
    ("status", "retryable", "retry_after"),
    [(429, True, 7.0), (500, True, None), (503, True, None), (404, False, None), (422, False, None)],
)
@pytest.mark.parametrize("method", list(OG_CALLS))
async def test_og_errors(
    og: FakeOpsgenie,
    og_pager: OpsgeniePager,
    method: str,
    status: int,
    retryable: bool,
    retry_after: float | None,
) -> None:
    og.fail_next("*", status=status, retry_after=7 if status == 429 else None)
    with pytest.raises(IntegrationError) as failed:
        await OG_CALLS[method](og_pager)
    error = failed.value
    assert (error.retryable, error.code, error.retry_after) == (retryable, str(status), retry_after)
    await OG_CALLS[method](og_pager)
