"""Slack in Socket Mode: firebell dials out to the fake Slack over a websocket.

With ``SLACK_APP_TOKEN`` set (and no signing secret) firebell opens a Socket
Mode connection (``apps.connections.open`` with the app-level token, then the
returned websocket URL); Slack's button clicks arrive there as envelopes and
firebell acknowledges each one on the socket instead of answering HTTP.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.incidents.card import ACTION_ACKNOWLEDGE, ACTION_RESOLVE
from tests.conftest import SLACK_SIGNING_SECRET, send_pagerduty
from tests.fakes import FakePagerDuty, FakeSlack
from tests.harness import FirebellServer, block_action_body, slack_signature_headers
from tests.samples import pagerduty_event
from tests.scenario.test_pagerduty_flow import card_of

Start = Callable[[dict[str, str]], FirebellServer]
Env = Callable[..., dict[str, str]]


def block_action_payload(action_id: str, value: str, **fields: str) -> dict[str, Any]:
    """The ``block_actions`` payload :func:`block_action_body` form-encodes, as a dict:
    in Socket Mode Slack sends it as the envelope's JSON ``payload``."""
    form = urllib.parse.parse_qs(block_action_body(action_id, value, **fields).decode())
    payload: dict[str, Any] = json.loads(form["payload"][0])
    return payload


def test_acknowledge_button_works_over_socket_mode(
    slack: FakeSlack, pagerduty: FakePagerDuty, firebell_env: Env, start_firebell: Start
) -> None:
    carol = slack.add_user("carol@acme.test", "Carol")
    pagerduty.add_user("carol@acme.test", "Carol")
    pagerduty.add_incident("PGR0VU2")
    firebell = start_firebell(firebell_env(SLACK_APP_TOKEN=slack.app_token, SLACK_SIGNING_SECRET=""))

    slack.socket_connected(timeout=10)
    opened = slack.last_call("apps.connections.open")
    assert opened.headers["Authorization"] == f"Bearer {slack.app_token}"
    assert len(slack.calls("GET /socket-mode/*")) == 1

    # No signing secret: nothing that arrives over HTTP can be verified, so it is refused.
    click = block_action_body(
        ACTION_ACKNOWLEDGE,
        "1",
        user_id=carol,
        user_name="carol",
        channel_id="C1",
        response_url=slack.new_response_url(),
    )
    refused = httpx.post(
        f"{firebell.url}/slack/events",
        content=click,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **slack_signature_headers(click, SLACK_SIGNING_SECRET),
        },
    )
    assert refused.status_code == 503
    assert "SLACK_SIGNING_SECRET" in refused.json()["error"]

    assert send_pagerduty(firebell, pagerduty_event()).status_code == 202
    slack.wait_for(lambda: slack.channel_by_name("inc-1-checkout-api-error-rate-above-5") is not None)
    channel = slack.channel_by_name("inc-1-checkout-api-error-rate-above-5")
    assert channel is not None
    slack.wait_for(lambda: any(m.blocks for m in slack.messages(channel.id)), message="card posted")
    assert ACTION_ACKNOWLEDGE in str(card_of(slack, channel.id)["blocks"])

    envelope_id = slack.send_envelope(
        "interactive",
        block_action_payload(
            ACTION_ACKNOWLEDGE,
            "1",
            user_id=carol,
            user_name="carol",
            channel_id=channel.id,
            response_url=slack.new_response_url(),
        ),
    )
    assert slack.wait_for_ack(envelope_id) == {"envelope_id": envelope_id}

    pagerduty.wait_for(lambda: pagerduty.incident_state("PGR0VU2").status == "acknowledged")
    assert pagerduty.last_call("PUT /incidents/PGR0VU2").headers["From"] == "carol@acme.test"
    slack.wait_for(lambda: "Acknowledged" in slack.channel(channel.id).topic)  # type: ignore[union-attr]
    slack.wait_for(
        lambda: ACTION_ACKNOWLEDGE not in str(card_of(slack, channel.id)["blocks"]),
        message="card lost its Acknowledge button",
    )
    card = card_of(slack, channel.id)
    assert ACTION_RESOLVE in str(card["blocks"])
    assert any(f"Acknowledged by <@{carol}>" in m.text for m in slack.messages(channel.id))
    # Acknowledged once, by the clicking user.
    timeline = [tuple(row) for row in firebell.sql("select kind, actor from timeline where incident_id = 1")]
    assert [entry for entry in timeline if entry[0] == "acknowledged"] == [("acknowledged", "carol")]

    # One envelope, one acknowledgement, one connection the whole time.
    assert [ack["envelope_id"] for ack in slack.socket_acks()] == [envelope_id]
    assert slack.socket_connection_count() == 1
    assert len(slack.calls("apps.connections.open")) == 1
    assert not slack.errors


# ---------------------------------------------------------------------- the fake itself


def test_fake_socket_mode_protocol(slack: FakeSlack) -> None:
    async def scenario() -> None:
        web = AsyncWebClient(token=slack.bot_token, base_url=f"{slack.url}/api/")
        with pytest.raises(SlackApiError) as refused:
            await web.apps_connections_open(app_token=slack.bot_token)
        assert refused.value.response["error"] == "invalid_auth"
        url = (await web.apps_connections_open(app_token=slack.app_token))["url"]
        assert url.startswith(f"ws://127.0.0.1:{slack.port}/socket-mode/")
        # The app-level token is no bot token.
        with pytest.raises(SlackApiError, match="invalid_auth"):
            await AsyncWebClient(token=slack.app_token, base_url=f"{slack.url}/api/").auth_test()

        async with aiohttp.ClientSession() as session:
            plain = await session.get(url)
            assert plain.status == 426
            plain.release()
            async with session.ws_connect(url, autoping=False) as ws:
                hello = await ws.receive_json(timeout=5)
                assert hello["type"] == "hello"
                assert hello["num_connections"] == 1
                assert hello["connection_info"] == {"app_id": slack.app_id}
                await asyncio.to_thread(slack.socket_connected, 5)

                await ws.ping(b"sdk-ping-pong:1")
                pong = await ws.receive(timeout=5)
                assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"sdk-ping-pong:1")

                command = {"command": "/firebell", "text": "status"}
                envelope_id = await asyncio.to_thread(slack.send_envelope, "slash_commands", command, True)
                envelope = await ws.receive_json(timeout=5)
                assert envelope == {
                    "envelope_id": envelope_id,
                    "type": "slash_commands",
                    "payload": command,
                    "accepts_response_payload": True,
                }
                event_id = await asyncio.to_thread(slack.send_envelope, "events_api", {"event": {}})
                event = await ws.receive_json(timeout=5)
                assert (event["envelope_id"], event["accepts_response_payload"]) == (event_id, False)
                assert (event["retry_attempt"], event["retry_reason"]) == (0, "")

                await ws.send_json({"envelope_id": envelope_id, "payload": {"text": "all quiet"}})
                ack = await asyncio.to_thread(slack.wait_for_ack, envelope_id, 5)
                assert ack == {"envelope_id": envelope_id, "payload": {"text": "all quiet"}}
                with pytest.raises(AssertionError, match="ack of envelope"):
                    await asyncio.to_thread(slack.wait_for_ack, event_id, 0.1)

                # A ticket opens one connection only.
                with pytest.raises(aiohttp.WSServerHandshakeError) as reused:
                    await session.ws_connect(url)
                assert reused.value.status == 401

            # The client hung up: the fake notices and has nobody to send to.
            await asyncio.to_thread(
                slack.wait_for, lambda: slack.socket_connection_count() == 0, 5, message="socket gone"
            )
            with pytest.raises(AssertionError, match="no Socket Mode client"):
                slack.send_envelope("events_api", {})

    asyncio.run(scenario())
    assert len(slack.calls("GET /socket-mode/*")) == 3
    assert not slack.errors


def test_fake_stop_closes_connected_sockets() -> None:
    async def scenario(fake: FakeSlack) -> aiohttp.WSMessage:
        web = AsyncWebClient(token=fake.bot_token, base_url=f"{fake.url}/api/")
        url = (await web.apps_connections_open(app_token=fake.app_token))["url"]
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            # Keep reading, as a client does, so the close handshake completes.
            receiving = asyncio.ensure_future(ws.receive(timeout=5))
            await asyncio.to_thread(fake.stop)
            return await receiving

    fake = FakeSlack()
    with fake:
        closing = asyncio.run(scenario(fake))
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert closing.data == aiohttp.WSCloseCode.GOING_AWAY
    assert fake.socket_connection_count() == 0
