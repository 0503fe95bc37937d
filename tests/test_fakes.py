"""Quick checks that the fake SaaS servers in ``tests/fakes`` speak their wire formats.

Real clients drive them: slack_sdk's ``AsyncWebClient`` for Slack, the official
``pagerduty`` client (over TLS with a trustme CA) for PagerDuty, and plain
httpx for Opsgenie.  Async code runs inside ``asyncio.run`` so these tests do
not depend on pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pagerduty
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import FakeOpsgenie, FakePagerDuty, FakeSlack, TlsMaterial, make_tls

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*SEV1* checkout is down"}}


@pytest.fixture(scope="module")
def fake_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls(tmp_path_factory.mktemp("fake-tls"))


@pytest.fixture
def slack_fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake
    assert not fake.errors


@pytest.fixture
def pd_fake(fake_tls: TlsMaterial) -> Iterator[FakePagerDuty]:
    with FakePagerDuty(tls=fake_tls) as fake:
        yield fake
    assert not fake.errors


@pytest.fixture
def og_fake() -> Iterator[FakeOpsgenie]:
    with FakeOpsgenie() as fake:
        yield fake
    assert not fake.errors


def _slack_client(fake: FakeSlack, token: str = "xoxb-test") -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=fake.url + "/api/")


# ---------------------------------------------------------------------- Slack


def test_slack_channel_lifecycle(slack_fake: FakeSlack) -> None:
    alice = slack_fake.add_user("alice@example.com", "Alice Liddell")

    async def scenario() -> tuple[str, str]:
        client = _slack_client(slack_fake)
        created = await client.conversations_create(name="inc-42-checkout")
        channel_id = str(created["channel"]["id"])
        with pytest.raises(SlackApiError) as taken:
            await client.conversations_create(name="inc-42-checkout")
        assert taken.value.response["error"] == "name_taken"
        with pytest.raises(SlackApiError) as bad_name:
            await client.conversations_create(name="Inc 42!")
        assert bad_name.value.response["error"] == "invalid_name_specials"

        await client.conversations_setTopic(channel=channel_id, topic="SEV1 checkout")
        found = await client.users_lookupByEmail(email="alice@example.com")
        await client.conversations_invite(channel=channel_id, users=[str(found["user"]["id"])])
        with pytest.raises(SlackApiError) as again:
            await client.conversations_invite(channel=channel_id, users=alice)
        assert again.value.response["error"] == "already_in_channel"

        posted = await client.chat_postMessage(channel=channel_id, text="SEV1", blocks=[SECTION])
        ts = str(posted["ts"])
        await client.chat_update(channel=channel_id, ts=ts, text="SEV1 (acked)", blocks=[{"type": "divider"}])
        with pytest.raises(SlackApiError) as missing:
            await client.chat_update(channel=channel_id, ts="1.000000", text="x")
        assert missing.value.response["error"] == "message_not_found"
        return channel_id, ts

    channel_id, ts = asyncio.run(scenario())
    channel = slack_fake.channel_by_name("inc-42-checkout")
    assert channel is not None and channel.id == channel_id
    assert channel.topic == "SEV1 checkout"
    assert alice in channel.members
    message = slack_fake.last_message(channel_id)
    assert (message.ts, message.text, message.blocks) == (ts, "SEV1 (acked)", [{"type": "divider"}])
    assert message.edits == [{"text": "SEV1", "blocks": [SECTION]}]
    assert len(slack_fake.calls("conversations.create")) == 3


def test_slack_auth_and_unknown_method(slack_fake: FakeSlack) -> None:
    async def scenario() -> None:
        with pytest.raises(SlackApiError) as wrong:
            await _slack_client(slack_fake, token="xoxb-wrong").auth_test()
        assert wrong.value.response["error"] == "invalid_auth"
        with pytest.raises(SlackApiError) as unknown:
            await _slack_client(slack_fake).api_call("chat.fly")
        assert unknown.value.response["error"] == "unknown_method"
        me = await _slack_client(slack_fake).auth_test()
        assert me["user_id"] == slack_fake.bot_user_id

    asyncio.run(scenario())
    # A GET with the token as a query parameter is accepted too.
    user_id = slack_fake.add_user("bob@example.com", "Bob")
    answer = httpx.get(f"{slack_fake.url}/api/users.info", params={"token": "xoxb-test", "user": user_id})
    assert answer.json()["user"]["profile"]["email"] == "bob@example.com"
    assert httpx.post(f"{slack_fake.url}/api/auth.test").json() == {"ok": False, "error": "not_authed"}


def test_slack_scripted_rate_limit_is_seen_by_client(slack_fake: FakeSlack) -> None:
    channel_id = slack_fake.add_channel("inc-7")
    slack_fake.fail_next("chat.postMessage", status=429, retry_after=1)

    async def without_retries() -> None:
        with pytest.raises(SlackApiError) as limited:
            await _slack_client(slack_fake).chat_postMessage(channel=channel_id, text="hello")
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"] == "1"
        assert limited.value.response["error"] == "ratelimited"

    asyncio.run(without_retries())

    slack_fake.fail_next("chat.postMessage", status=429, retry_after=0)

    async def with_retry_handler() -> None:
        client = _slack_client(slack_fake)
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
        await client.chat_postMessage(channel=channel_id, text="hello")

    asyncio.run(with_retry_handler())
    calls = slack_fake.calls("chat.postMessage")
    assert [call.fault.status if call.fault else 200 for call in calls] == [429, 429, 200]
    assert [message.text for message in slack_fake.messages(channel_id)] == ["hello"]


def test_slack_scripted_api_error(slack_fake: FakeSlack) -> None:
    slack_fake.fail_next("conversations.*", slack_error="internal_error", times=2)

    async def scenario() -> None:
        client = _slack_client(slack_fake)
        for _ in range(2):
            with pytest.raises(SlackApiError) as failed:
                await client.conversations_create(name="inc-1")
            assert failed.value.response.status_code == 200
            assert failed.value.response["error"] == "internal_error"
        await client.conversations_create(name="inc-1")

    asyncio.run(scenario())
    assert slack_fake.channel_by_name("inc-1") is not None
    assert slack_fake.pending_faults() == []


def test_slack_files_upload_v2(slack_fake: FakeSlack) -> None:
    channel_id = slack_fake.add_channel("inc-9")

    async def scenario() -> str:
        response = await _slack_client(slack_fake).files_upload_v2(
            channel=channel_id,
            content=b"GET /health 500\n",
            filename="access.log",
            title="Access log excerpt",
            initial_comment="evidence",
        )
        return str(response["file"]["id"])

    file_id = asyncio.run(scenario())
    (uploaded,) = slack_fake.files
    assert uploaded.id == file_id
    assert (uploaded.title, uploaded.filename, uploaded.content) == (
        "Access log excerpt",
        "access.log",
        b"GET /health 500\n",
    )
    assert uploaded.channel == channel_id and uploaded.initial_comment == "evidence"
    assert slack_fake.calls("/upload/*")[0].raw == b"GET /health 500\n"


def test_slack_response_url_records_posts(slack_fake: FakeSlack) -> None:
    response_url = slack_fake.new_response_url()
    answer = httpx.post(response_url, json={"response_type": "ephemeral", "text": "diag running"})
    assert answer.status_code == 200
    (post,) = slack_fake.response_posts(response_url)
    assert post.body == {"response_type": "ephemeral", "text": "diag running"}


# ---------------------------------------------------------------------- PagerDuty


def test_pagerduty_oncalls_and_incident_update(pd_fake: FakePagerDuty, fake_tls: TlsMaterial) -> None:
    pd_fake.add_oncall("P1", "primary@example.com", 1)
    pd_fake.add_oncall("P1", "secondary@example.com", 2)
    pd_fake.add_oncall("P2", "other@example.com", 1)
    pd_fake.add_incident("PX", title="Checkout 500s")
    with pagerduty.RestApiV2Client(
        "pd-test-token", default_from="x@y", base_url=pd_fake.url, verify=fake_tls.client_context()
    ) as client:
        oncalls = client.rget("/oncalls", params={"escalation_policy_ids[]": ["P1"], "include[]": ["users"]})
        assert isinstance(oncalls, list)
        assert [(o["escalation_level"], o["user"]["email"]) for o in oncalls] == [
            (1, "primary@example.com"),
            (2, "secondary@example.com"),
        ]
        assert oncalls[0]["escalation_policy"]["id"] == "P1"

        incident = client.rput(
            "/incidents/PX",
            json={"type": "incident_reference", "status": "acknowledged"},
            headers={"From": "primary@example.com"},
        )
        assert isinstance(incident, dict) and incident["status"] == "acknowledged"
        note = client.rpost(
            "/incidents/PX/notes", json={"content": "Slack: #inc-42"}, headers={"From": "primary@example.com"}
        )
        assert isinstance(note, dict) and note["content"] == "Slack: #inc-42"

        with pytest.raises(pagerduty.HttpError) as unknown_from:
            client.rput("/incidents/PX", json={"type": "incident_reference", "status": "resolved"})
        rejected = unknown_from.value.response
        assert rejected is not None and rejected.status_code == 400
        assert rejected.json()["error"]["errors"] == ["Requester User Not Found"]

    put = pd_fake.calls("PUT /incidents/PX")[0]
    assert put.headers["From"] == "primary@example.com"
    assert put.body == {"incident": {"type": "incident_reference", "status": "acknowledged"}}
    assert pd_fake.calls("/oncalls")[0].query_all["escalation_policy_ids[]"] == ["P1"]
    state = pd_fake.incident_state("PX")
    assert state.status == "acknowledged"
    assert state.status_changes == [("acknowledged", "primary@example.com")]


def test_pagerduty_rejects_a_wrong_token(pd_fake: FakePagerDuty, fake_tls: TlsMaterial) -> None:
    client = pagerduty.RestApiV2Client("wrong", base_url=pd_fake.url, verify=fake_tls.client_context())
    with client, pytest.raises(pagerduty.HttpError) as denied:
        client.rget("/users", params={"query": "a"})
    response = denied.value.response
    assert response is not None and response.status_code == 401
    assert response.json()["error"]["code"] == 2006


# ---------------------------------------------------------------------- Opsgenie


def test_opsgenie_oncalls_and_alert_actions(og_fake: FakeOpsgenie) -> None:
    og_fake.add_oncall("platform-primary", "oncall@example.com")
    alert_id = og_fake.add_alert(alias="checkout-500", message="Checkout 500s")
    headers = {"Authorization": "GenieKey og-test-key"}
    on_calls = "/v2/schedules/platform-primary/on-calls"
    with httpx.Client(base_url=og_fake.url, headers=headers) as client:
        flat = client.get(on_calls, params={"scheduleIdentifierType": "name", "flat": "true"}).json()
        assert flat["data"]["onCallRecipients"] == ["oncall@example.com"]
        assert flat["data"]["_parent"]["name"] == "platform-primary"
        nested = client.get(on_calls, params={"scheduleIdentifierType": "name"}).json()
        assert nested["data"]["onCallParticipants"][0]["name"] == "oncall@example.com"

        accepted = client.post(
            "/v2/alerts/checkout-500/acknowledge",
            params={"identifierType": "alias"},
            json={"user": "oncall@example.com", "note": "on it", "source": "firebell"},
        )
        assert accepted.status_code == 202
        assert accepted.json()["result"] == "Request will be processed"
        status = client.get(f"/v2/alerts/requests/{accepted.json()['requestId']}").json()
        assert status["data"]["isSuccess"] is True
        alert = client.get(f"/v2/alerts/{alert_id}").json()["data"]
        assert alert["acknowledged"] is True

        og_fake.fail_next("/v2/alerts/*/close", status=503)
        close = f"/v2/alerts/{alert_id}/close"
        assert client.post(close, json={}).status_code == 503
        assert client.post(close, json={"user": "oncall@example.com"}).status_code == 202
        assert client.get("/v2/alerts/nope").status_code == 404
        wrong_key = {"Authorization": "GenieKey wrong"}
        assert client.get(f"/v2/alerts/{alert_id}", headers=wrong_key).status_code == 401

    assert og_fake.alert(alert_id).status == "closed"
    assert [action.action for action in og_fake.actions()] == ["acknowledge", "close"]
    assert og_fake.calls("/v2/alerts/checkout-500/acknowledge")[0].query["identifierType"] == "alias"


# ---------------------------------------------------------------------- shared machinery


def test_latency_wait_for_and_clean_shutdown() -> None:
    fake = FakeOpsgenie()
    with fake:
        fake.latency = 0.2
        started = time.monotonic()
        httpx.get(f"{fake.url}/v2/alerts/x", headers={"Authorization": "GenieKey og-test-key"})
        assert time.monotonic() - started >= 0.2
        fake.latency = 0
        fake.wait_for(lambda: len(fake.requests) == 1, timeout=1)
        with pytest.raises(AssertionError, match="1 request"):
            fake.wait_for(lambda: False, timeout=0.05, message="never")
        fake.clear()
        assert fake.requests == []
    assert not any(thread.name.startswith("FakeOpsgenie") for thread in threading.enumerate())
    fake.stop()  # idempotent


def test_pagerduty_needs_tls(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TLS"):
        FakePagerDuty(tls=None)
    with FakePagerDuty(tls=make_tls(tmp_path)) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
