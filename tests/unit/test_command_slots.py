"""``/incident`` refuses work in its acknowledgement when too much is queued."""

from __future__ import annotations

import asyncio
from typing import Any

from handlers.incident_command import CommandSlots, handle_incident_command


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


class SlowCommands:
    """Stands in for IncidentCommands: ``find`` waits until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def find(self, channel_id: str | None, ref: object) -> Any:
        await self.release.wait()
        raise LookupError("not needed")


async def test_a_command_past_the_limit_is_refused_in_its_ack() -> None:
    slots = CommandSlots(limit=1)
    commands = SlowCommands()
    body = {"text": "summary", "channel_id": "C1", "user_id": "U1", "response_url": "x"}
    first_ack, second_ack, respond = Recorder(), Recorder(), Recorder()
    first = asyncio.create_task(
        handle_incident_command(first_ack, body, respond, None, commands, None, None, slots)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0)
    assert first_ack.calls == [{}] and slots.in_use == 1
    await handle_incident_command(second_ack, body, respond, None, commands, None, None, slots)  # type: ignore[arg-type]
    assert second_ack.calls[0]["response_type"] == "ephemeral"
    assert "busy" in second_ack.calls[0]["text"] and "`/incident summary`" in second_ack.calls[0]["text"]
    commands.release.set()
    await first
    assert slots.in_use == 0  # given back even though the command failed
