"""Signed unsubscribe links: ``/unsubscribe/<subscriber id>.<signature>``.

The key is made by firebell on first use and kept in the database, so every
replica signs and checks alike and no one has to configure it. The link
identifies the subscriber without exposing or guessing anyone else's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.database import dialect_insert
from bot.store.tables import AppSecret, Subscriber

SECRETS = AppSecret.__table__  # type: ignore[attr-defined]
SUBSCRIBERS = Subscriber.__table__  # type: ignore[attr-defined]
KEY_NAME = "unsubscribe_signing_key"


async def signing_key(engine: AsyncEngine) -> bytes:
    """The key, created on first use (two replicas racing agree on the first one stored)."""
    async with engine.begin() as connection:
        await connection.execute(
            dialect_insert(engine)(SECRETS)
            .values(name=KEY_NAME, value=secrets.token_hex(32))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = await connection.scalar(select(SECRETS.c.value).where(SECRETS.c.name == KEY_NAME))
    assert value is not None
    return bytes.fromhex(value)


def _signature(subscriber_id: int, key: bytes) -> str:
    digest = hmac.new(key, f"unsubscribe:{subscriber_id}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def unsubscribe_token(subscriber_id: int, key: bytes) -> str:
    return f"{subscriber_id}.{_signature(subscriber_id, key)}"


def verify_token(token: str, key: bytes) -> int | None:
    """The subscriber id a token was made for, or None for a forged or mangled one."""
    number, _, signature = token.partition(".")
    if not number.isdigit() or len(number) > 18:
        return None
    subscriber_id = int(number)
    if not hmac.compare_digest(signature, _signature(subscriber_id, key)):
        return None
    return subscriber_id


def unsubscribe_url(public_url: str, subscriber_id: int, key: bytes) -> str:
    return f"{public_url.rstrip('/')}/unsubscribe/{unsubscribe_token(subscriber_id, key)}"


async def unsubscribe(engine: AsyncEngine, subscriber_id: int, now: datetime) -> bool:
    """Mark the subscriber unsubscribed; False when it does not exist."""
    async with engine.begin() as connection:
        result = await connection.execute(
            update(SUBSCRIBERS)
            .where(SUBSCRIBERS.c.id == subscriber_id)
            .values(unsubscribed_at=func.coalesce(SUBSCRIBERS.c.unsubscribed_at, now))
        )
        return bool(result.rowcount)
