"""The public status page: HTML, Atom, Statuspage-compatible JSON, and subscribing.

Everything shown comes from published notices (``bot.notices.status_store``)
through the pure view (``bot.notices.status_view``). The HTML is one
self-contained document (inline CSS, no external assets) that works with
JavaScript off; a small inline script adds a "Get browser notifications"
button when the browser supports Web Push and a VAPID public key is set.
Both inline blocks are allowed by hash in a strict Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.notices.config import NoticesConfig
from bot.notices.model import PushKeys
from bot.notices.status_store import (
    PushSubscription,
    add_subscriber,
    load_recent_notices,
    load_status_notices,
)
from bot.notices.status_view import (
    PAST_WINDOW,
    STATUS_LABELS,
    StatusView,
    atom_feed,
    build_status_view,
    components_json,
    email_segments,
    feed_incidents,
    incidents_json,
    normalize_email,
    push_segment,
    status_json,
    summary_json,
    unresolved_incidents_json,
)

MAX_FORM_BYTES = 16 * 1024
MAX_PUSH_BYTES = 8 * 1024
API_WINDOW = timedelta(days=90)
"""How far back ``/api/v2/incidents.json`` reaches."""

CSS = """
:root{color-scheme:light dark;--fg:#1d2329;--muted:#5b6670;--bg:#f6f7f9;--card:#fff;--line:#dde1e6;
--ok:#1f8a4c;--minor:#b7791f;--major:#c05621;--critical:#c53030;--accent:#2b6cb0}
@media (prefers-color-scheme:dark){:root{--fg:#e7eaee;--muted:#a0aab4;--bg:#14171a;--card:#1c2025;
--line:#2e343b;--ok:#48bb78;--minor:#ecc94b;--major:#ed8936;--critical:#fc8181;--accent:#63b3ed}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
main{max-width:46rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.2rem;margin:2rem 0 .75rem}
h3{font-size:1.05rem;margin:0 0 .5rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem;margin:0 0 1rem}
.banner{font-weight:600;font-size:1.1rem;border-left:.4rem solid var(--ok)}
.ind-minor{border-left-color:var(--minor)}.ind-major{border-left-color:var(--major)}
.ind-critical{border-left-color:var(--critical)}
ul.components{list-style:none;margin:0;padding:0}
ul.components li{display:flex;justify-content:space-between;gap:1rem;padding:.5rem 0;
border-bottom:1px solid var(--line)}
ul.components li:last-child{border-bottom:0}
.state{font-weight:600}.state.operational{color:var(--ok)}.state.degraded_performance{color:var(--minor)}
.state.partial_outage{color:var(--major)}.state.major_outage{color:var(--critical)}
.impact-minor{border-left:.3rem solid var(--minor)}.impact-major{border-left:.3rem solid var(--major)}
.impact-critical{border-left:.3rem solid var(--critical)}.impact-none{border-left:.3rem solid var(--line)}
ol.updates{list-style:none;margin:0;padding:0}
ol.updates li{padding:.5rem 0;border-top:1px solid var(--line)}
.body{white-space:pre-line;overflow-wrap:anywhere;margin:.25rem 0}
.meta,small{color:var(--muted);font-size:.875rem}
.notice{background:var(--card);border:1px solid var(--ok);border-radius:.5rem;padding:.75rem 1rem}
.error{color:var(--critical);font-weight:600}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=email],select{width:100%;max-width:24rem;padding:.5rem;font:inherit;color:inherit;
background:var(--bg);border:1px solid var(--line);border-radius:.375rem}
fieldset{border:0;padding:0;margin:.75rem 0 0}legend{font-weight:600}
fieldset label{display:inline-flex;gap:.35rem;font-weight:400;margin:.25rem 1rem .25rem 0}
button{font:inherit;font-weight:600;padding:.5rem 1rem;margin-top:1rem;border:0;border-radius:.375rem;
background:var(--accent);color:#fff;cursor:pointer}
button[disabled]{opacity:.6}
a{color:var(--accent)}footer{margin-top:2rem}
""".strip()

SCRIPT = """
(function () {
  var box = document.getElementById("push");
  if (!box) { return; }
  var key = box.getAttribute("data-vapid-key");
  if (!key || !("Notification" in window) || !("PushManager" in window) ||
      !("serviceWorker" in navigator)) { return; }
  var button = box.querySelector("button");
  var note = box.querySelector("[data-role=note]");
  box.hidden = false;
  function keyBytes(text) {
    var padded = text + "===".slice((text.length + 3) % 4);
    var raw = atob(padded.replace(/-/g, "+").replace(/_/g, "/"));
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }
  function activated(registration) {
    if (registration.active) { return Promise.resolve(registration); }
    var worker = registration.installing || registration.waiting;
    return new Promise(function (resolve) {
      worker.addEventListener("statechange", function () {
        if (worker.state === "activated") { resolve(registration); }
      });
    });
  }
  button.addEventListener("click", function () {
    button.disabled = true;
    note.textContent = "";
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") { throw new Error("notifications are blocked for this page"); }
      return navigator.serviceWorker.register(box.getAttribute("data-worker"),
                                              {scope: box.getAttribute("data-scope")});
    }).then(activated).then(function (registration) {
      return registration.pushManager.getSubscription().then(function (existing) {
        return existing || registration.pushManager.subscribe(
          {userVisibleOnly: true, applicationServerKey: keyBytes(key)});
      });
    }).then(function (subscription) {
      return fetch(box.getAttribute("data-endpoint"), {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(subscription.toJSON ? subscription.toJSON() : subscription)
      });
    }).then(function (response) {
      if (!response.ok) { throw new Error("the server refused the subscription"); }
      note.textContent = "Browser notifications are on.";
    }).catch(function (error) {
      note.textContent = "Could not turn on browser notifications: " + error.message;
      button.disabled = false;
    });
  });
})();
""".strip()

SERVICE_WORKER = """
self.addEventListener("push", function (event) {
  var data = {};
  if (event.data) {
    try { data = event.data.json(); } catch (e) { data = {body: event.data.text()}; }
  }
  var title = data.title || data.subject || "Status update";
  var url = data.url || self.registration.scope;
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || data.text || "", data: {url: url}, tag: data.tag || undefined
  }));
});
self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || self.registration.scope;
  event.waitUntil(self.clients.openWindow(url));
});
""".strip()


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"script-src {_csp_hash(SCRIPT)}",
        f"style-src {_csp_hash(CSS)}",
        "img-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
API_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Access-Control-Allow-Origin": "*",
    "Cache-Control": "no-cache",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ view.title }}</title>
<link rel="icon" href="data:,">
<link rel="alternate" type="application/atom+xml" title="{{ view.title }}" href="status/feed.atom">
<style>{{ css }}</style>
</head>
<body>
<main>
<h1>{{ view.title }}</h1>
{% if subscribed %}<p class="notice" role="status" id="thanks">Thank you: you are subscribed.
We will email you when we post an update.</p>{% endif %}
<p class="card banner ind-{{ view.status.indicator }}" id="overall">{{ view.status.description }}</p>

{% if view.components %}
<section aria-labelledby="components-h">
<h2 id="components-h">Components</h2>
<div class="card"><ul class="components">
{% for c in view.components %}<li id="component-{{ c.id }}"><span>{{ c.name }}</span>
<span class="state {{ c.status }}">{{ c.label }}</span></li>
{% endfor %}</ul></div>
</section>
{% endif %}

<section aria-labelledby="open-h">
<h2 id="open-h">Current incidents</h2>
{% for i in view.open_incidents %}
<article class="card impact-{{ i.current_impact }}" id="{{ i.id }}">
<h3>{{ i.name }}</h3>
<p class="meta">{{ labels[i.status] }} · impact: {{ i.current_impact }}{% if i.components %}
· affects {{ i.components | join(", ") }}{% endif %}</p>
{{ updates(i) }}
</article>
{% else %}
<p class="card" id="no-open">No incidents right now.</p>
{% endfor %}
</section>

<section aria-labelledby="past-h">
<h2 id="past-h">Past incidents ({{ past_days }} days)</h2>
{% for i in view.past_incidents %}
<article class="card" id="{{ i.id }}">
<h3>{{ i.name }}</h3>
<p class="meta">Resolved {{ when(i.resolved_at) }}</p>
<details><summary>{{ i.updates | length }} update{{ "" if i.updates | length == 1 else "s" }}</summary>
{{ updates(i) }}
</details>
</article>
{% else %}
<p class="card" id="no-past">No incidents in the past {{ past_days }} days.</p>
{% endfor %}
</section>

<section aria-labelledby="subscribe-h" id="subscribe">
<h2 id="subscribe-h">Get updates</h2>
<div class="card">
{% if form.segments %}
<form method="post" action="status/subscribe" novalidate>
{% if form.error %}<p class="error" role="alert" id="form-error">{{ form.error }}</p>{% endif %}
<label for="email">Email address</label>
<input type="email" id="email" name="email" required maxlength="254" autocomplete="email"
 value="{{ form.email }}"{% if form.error %} aria-invalid="true" aria-describedby="form-error"{% endif %}>
{% if form.segments | length > 1 %}
<label for="segment">Updates for</label>
<select id="segment" name="segment">
{% for s in form.segments %}
<option value="{{ s }}"{% if s == form.segment %} selected{% endif %}>{{ s }}</option>
{% endfor %}</select>
{% else %}<input type="hidden" name="segment" value="{{ form.segments[0] }}">
{% endif %}
{% if form.locales | length > 1 %}
<label for="locale">Language</label>
<select id="locale" name="locale">
{% for l in form.locales %}
<option value="{{ l }}"{% if l == form.locale %} selected{% endif %}>{{ l }}</option>
{% endfor %}</select>
{% else %}<input type="hidden" name="locale" value="{{ form.locales[0] }}">
{% endif %}
{% if form.components %}
<fieldset><legend>Only about these components (none ticked: all)</legend>
{% for c in form.components %}<label><input type="checkbox" name="components" value="{{ c }}"
{%- if c in form.chosen %} checked{% endif %}> {{ c }}</label>
{% endfor %}</fieldset>
{% endif %}
<button type="submit">Subscribe</button>
</form>
{% else %}
<p>Email updates are not offered on this page.</p>
{% endif %}
{% if push %}
<div id="push" hidden data-vapid-key="{{ push.key }}" data-endpoint="status/push-subscriptions"
 data-worker="status/sw.js" data-scope="status/">
<button type="button">Get browser notifications</button>
<p class="meta" data-role="note" aria-live="polite"></p>
</div>
{% endif %}
</div>
</section>

<footer><small>Updated {{ when(view.updated_at) }} ·
<a href="status/feed.atom">Atom feed</a> ·
<a href="api/v2/summary.json">JSON API</a></small></footer>
</main>
{% if push %}<script>{{ script }}</script>{% endif %}
</body>
</html>
"""

UPDATES = """<ol class="updates">
{% for u in incident.updates %}<li id="{{ u.id }}"><strong>{{ labels[u.status] }}</strong>
<span class="meta">— <time datetime="{{ iso(u.at) }}">{{ when(u.at) }}</time></span>
<p class="body">{{ u.body }}</p>
{% if u.components %}<p class="meta">Affected: {{ u.components | map(attribute="name") | join(", ") }}</p>
{% endif %}</li>
{% endfor %}</ol>"""


@dataclass
class FormState:
    segments: list[str]
    locales: list[str]
    components: list[str]
    email: str = ""
    segment: str = ""
    locale: str = ""
    chosen: list[str] = field(default_factory=list)
    error: str | None = None


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _iso(moment: datetime) -> str:
    return moment.isoformat()


_templates = Environment(
    loader=DictLoader({"page.html": PAGE, "updates.html": UPDATES}),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(
    view: StatusView,
    form: FormState,
    *,
    subscribed: bool = False,
    vapid_public_key: str | None = None,
    past_days: int = PAST_WINDOW.days,
) -> str:
    """The status page's HTML; every value from the view or the form is escaped."""
    updates_template = _templates.get_template("updates.html")

    def updates(incident: Any) -> Markup:
        return Markup(  # noqa: S704 - rendered by the autoescaping template above
            updates_template.render(incident=incident, labels=STATUS_LABELS, when=_when, iso=_iso)
        )

    return _templates.get_template("page.html").render(
        view=view,
        form=form,
        subscribed=subscribed,
        push={"key": vapid_public_key} if vapid_public_key else None,
        labels=STATUS_LABELS,
        when=_when,
        updates=updates,
        past_days=past_days,
        css=Markup(CSS),  # noqa: S704 - a constant, allowed by hash in the CSP
        script=Markup(SCRIPT),  # noqa: S704 - a constant, allowed by hash in the CSP
    )


_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def parse_push_subscription(payload: Any) -> PushSubscription | None:
    """A ``PushSubscription.toJSON()`` body, or ``None`` when it is not a usable one."""
    if not isinstance(payload, Mapping):
        return None
    endpoint, keys = payload.get("endpoint"), payload.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, Mapping):
        return None
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme != "https" or not parsed.hostname or len(endpoint) > 2048:
        return None
    if not isinstance(p256dh, str) or not isinstance(auth, str):
        return None
    if not (_BASE64URL.match(p256dh) and len(p256dh) <= 200 and _BASE64URL.match(auth) and len(auth) <= 64):
        return None
    return PushSubscription(endpoint, PushKeys(p256dh=p256dh, auth=auth))


async def _read_body(request: Request, limit: int) -> bytes | None:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


def status_page_router(
    engine: AsyncEngine,
    notices: NoticesConfig,
    clock: Clock,
    *,
    public_url: str | None = None,
    vapid_public_key: str | None = None,
) -> APIRouter:
    """The status page's routes: ``GET /status``, ``POST /status/subscribe``,
    ``POST /status/push-subscriptions``, ``GET /status/sw.js``,
    ``GET /status/feed.atom`` and ``GET /api/v2/{summary,status,components,incidents}.json``."""
    router = APIRouter()
    segments = notices.effective_segments()
    title = notices.status_page_title
    form_segments = email_segments(segments)
    form_locales = list(dict.fromkeys(locale for name in form_segments for locale in segments[name].locales))

    def base_url(request: Request) -> str:
        return (public_url or str(request.base_url)).rstrip("/")

    async def load(window: timedelta = PAST_WINDOW) -> StatusView:
        now = clock.now()
        rows = await load_status_notices(engine, now - window)
        return build_status_view(
            rows, components=notices.components, segments=segments, title=title, now=now, past_window=window
        )

    def blank_form() -> FormState:
        return FormState(
            segments=form_segments,
            locales=form_locales,
            components=list(notices.components),
            segment=form_segments[0] if form_segments else "",
            locale=form_locales[0] if form_locales else "",
        )

    def html(body: str, status_code: int = 200) -> Response:
        return Response(body, status_code=status_code, media_type="text/html", headers=SECURITY_HEADERS)

    @router.get("/status", response_class=Response, responses={200: {"content": {"text/html": {}}}})
    async def status_page(request: Request) -> Response:
        """The status page (HTML)."""
        view = await load()
        subscribed = request.query_params.get("subscribed") == "1"
        return html(render_page(view, blank_form(), subscribed=subscribed, vapid_public_key=vapid_public_key))

    @router.post("/status/subscribe", response_class=Response, status_code=303)
    async def subscribe(request: Request) -> Response:
        """The subscribe form (``application/x-www-form-urlencoded``): 303 back to the page, 400 with
        the form and its error."""
        form = blank_form()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await _read_body(request, MAX_FORM_BYTES)
        if body is None or content_type != "application/x-www-form-urlencoded":
            form.error = "That form could not be read; please try again."
            return html(render_page(await load(), form), 400)
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        form.email = fields.get("email", [""])[0][:320]
        form.segment = fields.get("segment", [form.segment])[0]
        form.locale = fields.get("locale", [form.locale])[0]
        form.chosen = [c for c in fields.get("components", []) if c]
        address = normalize_email(form.email)
        if address is None:
            form.error = "Please enter a valid email address, such as name@example.com."
        elif form.segment not in form_segments:
            form.error = "Please choose which updates you want."
        elif form.locale not in segments[form.segment].locales:
            form.error = "Please choose a language offered for those updates."
        elif any(c not in notices.components for c in form.chosen):
            form.error = "Please choose components from the list."
        if form.error is not None or address is None:
            return html(render_page(await load(), form, vapid_public_key=vapid_public_key), 400)
        await add_subscriber(
            engine,
            address,
            segment=form.segment,
            locale=form.locale,
            components=form.chosen,
            now=clock.now(),
        )
        location = f"{request.scope.get('root_path', '')}/status?subscribed=1#thanks"
        return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})

    @router.post(
        "/status/push-subscriptions",
        status_code=201,
        responses={400: {"description": "Not a push subscription"}, 404: {"description": "Push is off"}},
    )
    async def push_subscription(request: Request) -> JSONResponse:
        """Store a browser's Push API subscription (``PushSubscription.toJSON()``)."""
        segment = push_segment(segments)
        if vapid_public_key is None or segment is None:
            return JSONResponse({"error": "browser push is not offered"}, status_code=404)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return JSONResponse({"error": "send application/json"}, status_code=415)
        body = await _read_body(request, MAX_PUSH_BYTES)
        try:
            payload = json.loads(body) if body is not None else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        subscription = parse_push_subscription(payload)
        if subscription is None:
            return JSONResponse({"error": "not a push subscription"}, status_code=400)
        result = await add_subscriber(
            engine, subscription, segment=segment, locale=segments[segment].locales[0], now=clock.now()
        )
        return JSONResponse(
            {"subscribed": True, "segment": segment}, status_code=201 if result.created else 200
        )

    @router.get("/status/sw.js", include_in_schema=False)
    async def service_worker() -> Response:
        return Response(
            SERVICE_WORKER,
            media_type="text/javascript",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )

    @router.get("/status/feed.atom", response_class=Response)
    async def feed(request: Request) -> Response:
        """Every status update, newest first (Atom 1.0)."""
        now = clock.now()
        rows = await load_recent_notices(engine)
        base = base_url(request)
        body = atom_feed(
            feed_incidents(rows, components=notices.components, segments=segments),
            title=title,
            page_url=f"{base}/status",
            feed_url=f"{base}/status/feed.atom",
            now=now,
        )
        return Response(body, media_type="application/atom+xml; charset=utf-8", headers={**API_HEADERS})

    @router.get("/api/v2/summary.json")
    async def summary(request: Request) -> JSONResponse:
        """Atlassian Statuspage-compatible summary: page, components, unresolved incidents, status."""
        return JSONResponse(summary_json(await load(), f"{base_url(request)}/status"), headers=API_HEADERS)

    @router.get("/api/v2/status.json")
    async def status(request: Request) -> JSONResponse:
        """Atlassian Statuspage-compatible page status."""
        return JSONResponse(status_json(await load(), f"{base_url(request)}/status"), headers=API_HEADERS)

    @router.get("/api/v2/components.json")
    async def components(request: Request) -> JSONResponse:
        """Atlassian Statuspage-compatible component list."""
        return JSONResponse(components_json(await load(), f"{base_url(request)}/status"), headers=API_HEADERS)

    @router.get("/api/v2/incidents.json")
    async def incidents(request: Request) -> JSONResponse:
        """Atlassian Statuspage-compatible list of recent incidents (the last 90 days, at most 50)."""
        view = await load(API_WINDOW)
        return JSONResponse(incidents_json(view, f"{base_url(request)}/status"), headers=API_HEADERS)

    @router.get("/api/v2/incidents/unresolved.json")
    async def unresolved(request: Request) -> JSONResponse:
        """Atlassian Statuspage-compatible list of unresolved incidents."""
        return JSONResponse(
            unresolved_incidents_json(await load(), f"{base_url(request)}/status"), headers=API_HEADERS
        )

    return router
