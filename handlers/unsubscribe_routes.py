"""``/unsubscribe/<token>``: the link in every notice email.

``POST`` unsubscribes at once — what mail clients send for RFC 8058 one-click
(``List-Unsubscribe=One-Click``) and what the confirmation page's button
sends. ``GET`` only shows that button: link scanners that follow every URL in
a message must not unsubscribe anyone.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from bot.notices.unsubscribe import signing_key, unsubscribe, verify_token

if TYPE_CHECKING:
    from handlers.app import Firebell

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:Helvetica,Arial,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#172b4d}}
button{{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:4px;background:#0052cc;color:#fff}}
</style>
</head><body><h1>{title}</h1>{body}</body></html>"""
HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=html.escape(title), body=body), status_code=status, headers=HEADERS)


def add_unsubscribe_routes(app: FastAPI, firebell: Firebell) -> None:
    async def subscriber_for(token: str) -> int | None:
        return verify_token(token, await signing_key(firebell.engine))

    @app.get("/unsubscribe/{token}", response_class=HTMLResponse)
    async def confirm(token: str) -> HTMLResponse:
        """The confirmation page (a GET never unsubscribes)."""
        if await subscriber_for(token) is None:
            return page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 404)
        action = html.escape(f"/unsubscribe/{token}")
        form = (
            "<p>Stop receiving status notices at this address?</p>"
            f'<form method="post" action="{action}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return page("Unsubscribe", form)

    @app.post("/unsubscribe/{token}", response_class=HTMLResponse)
    async def one_click(token: str) -> HTMLResponse:
        """RFC 8058 one-click unsubscribe."""
        subscriber_id = await subscriber_for(token)
        if subscriber_id is None or not await unsubscribe(
            firebell.engine, subscriber_id, firebell.clock.now()
        ):
            return page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 404)
        firebell.metrics.unsubscribes.inc()
        return page("Unsubscribed", "<p>You will not receive status notices at this address any more.</p>")
