"""What each notice channel's sender provides to the outbox dispatcher.

``send`` delivers one message and calls ``commit`` exactly once, just before
the step after which the message may have been delivered (for SMTP: before the
final ``.`` of DATA). The dispatcher makes that mark durable, so after a crash
a message is never sent twice: a delivery marked committed counts as sent. A
sender raises ``DeliveryFailed`` for a refusal (``permanent`` for one that
will not change, ``gone`` for a push subscription that no longer exists) and
``IntegrationError(retryable=True)`` for an outage before ``commit``, and
``DeliveryUncertain`` when the outcome after ``commit`` is unknown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar, Protocol

from bot.errors import FirebellError
from bot.notices.model import Outgoing

Commit = Callable[[], Awaitable[None]]


class DeliveryFailed(FirebellError):
    def __init__(self, reason: str, *, permanent: bool, gone: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.gone = gone


class DeliveryUncertain(FirebellError):
    """The connection broke after ``commit``: the message may have been
    delivered. It is counted as sent (unconfirmed), never sent again."""


class Sender(Protocol):
    channel: ClassVar[str]

    async def send(self, message: Outgoing, commit: Commit) -> None: ...

    async def close(self) -> None:
        """Close pooled connections."""
        ...
