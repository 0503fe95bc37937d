"""How failures reach the Slack user: their own mistakes as a plain
ephemeral answer, anything else as a reference to the logged traceback."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.errors import UserError

log = logging.getLogger(__name__)


def failure_message(error: Exception) -> str:
    """What the user sees when something fails: the reason when it is theirs
    to fix, otherwise a reference to the logged traceback."""
    if isinstance(error, UserError):
        return f":warning: {error}"
    ref = secrets.token_hex(3)
    log.error("Slack request failed (ref %s)", ref, exc_info=error)
    return f":x: That failed (ref {ref}). The details are in firebell's log."


async def answer_failures(respond: AsyncRespond | None, work: Awaitable[None]) -> None:
    """Run work that follows an ack and tell the user if it fails.

    Errors must not escape a listener after ack(): Bolt's runner then drops
    the acknowledgement and Slack sees the request fail after 3 seconds.
    """
    try:
        await work
    except Exception as error:  # noqa: BLE001 - reported with its traceback by failure_message
        message = failure_message(error)
        if respond is not None:
            await respond(text=message, response_type="ephemeral", replace_original=False)
        else:
            log.info("could not tell the user: %s", message)
