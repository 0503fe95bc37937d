"""Parses ``/incident …`` text into a ``Command`` (pure; no I/O).

A wrong or incomplete command raises ``UserError`` whose message says what was
wrong and shows the right usage, so the reply is always helpful.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bot.alerts.severity import Severity
from bot.errors import UserError
from bot.incidents.model import Phase, Role


@dataclass(frozen=True)
class Usage:
    syntax: str
    summary: str
    example: str
    needs_incident: bool = True


USAGES: dict[str, Usage] = {
    "help": Usage("help", "list the commands", "/incident help", needs_incident=False),
    "declare": Usage(
        "declare [title]",
        "open an incident: a form asks for severity, service and details",
        "/incident declare Checkout returns 503",
        needs_incident=False,
    ),
    "status": Usage(
        "status investigating|identified|monitoring|resolved [note]",
        "say where the response stands",
        "/incident status identified bad deploy 4711",
    ),
    "sev": Usage("sev 1-4", "change the severity", "/incident sev 2"),
    "ack": Usage("ack", "acknowledge (here and in the pager)", "/incident ack"),
    "resolve": Usage("resolve [note]", "resolve (here and in the pager)", "/incident resolve rolled back"),
    "reopen": Usage("reopen", "reopen a resolved incident", "/incident reopen"),
    "role": Usage(
        "role commander|comms|scribe @user",
        "give someone an incident role",
        "/incident role commander @alice",
    ),
    "roles": Usage("roles", "who holds which role", "/incident roles"),
    "escalate": Usage(
        "escalate [service|@user]",
        "escalate in the pager: next level, another service, or a person",
        "/incident escalate @bob",
    ),
    "update": Usage(
        "update <text>", "post a status update (resets the update timer)", "/incident update DB failover done"
    ),
    "timeline": Usage(
        "timeline [add <text>]", "show the timeline, or add to it", "/incident timeline add paged the DBA"
    ),
    "summary": Usage("summary", "what a newcomer needs to know", "/incident summary"),
    "postmortem": Usage("postmortem", "a postmortem draft, as a Markdown file", "/incident postmortem"),
    "diag": Usage(
        "diag http URL… [--count N] | diag logs NAME | diag timeouts | diag resources TARGET"
        " | diag monitors [CHECK]",
        "probe URLs (status, CDN, TLS, verdict), read a configured access log, compare the configured"
        " proxy timeouts, a host's resources from Prometheus, or the uptime monitors; posted and timelined",
        "/incident diag http https://shop.example/ --count 10",
    ),
    "notify": Usage(
        "notify [message]",
        "a customer notice: a form, a preview per segment and channel, then email, push and the status page",
        "/incident notify Card payments fail for some customers",
    ),
    "runbook": Usage(
        "runbook list | runbook run NAME [key=value…]",
        "list the runbooks for this incident, or plan one for review (Run / Cancel, approvals, audit)",
        "/incident runbook run web-503 url=https://shop.example/ backend=web server=web-2",
    ),
}
ALIASES = {"severity": "sev", "acknowledge": "ack", "resolved": "resolve", "?": "help", "new": "declare"}

_CHANNEL = re.compile(r"<#(?P<id>C[A-Z0-9]+)(?:\|(?P<name>[^>]*))?>")
_HASH_NAME = re.compile(r"(?<!\S)#(?P<name>[a-z0-9][a-z0-9_-]*)")
_USER = re.compile(r"^<@(?P<id>[UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_SLACK_LINK = re.compile(r"^<(?P<url>[^<>|]+)(?:\|[^<>]*)?>$")
MAX_DIAG_URLS = 10
MAX_CHECK_NAME = 100
_TARGET = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})(?::[0-9]{1,5})?$")
DIAG_KINDS = "`http`, `logs`, `timeouts`, `resources` or `monitors`"


@dataclass(frozen=True)
class IncidentRef:
    """How the command names its incident when not run in the incident channel."""

    channel_id: str | None = None
    channel_name: str | None = None


@dataclass(frozen=True)
class Command:
    name: str
    text: str = ""
    phase: Phase | None = None
    severity: Severity | None = None
    role: Role | None = None
    user_id: str | None = None
    service: str | None = None
    add: bool = False
    incident: IncidentRef | None = None
    diag_kind: str | None = None
    """``http``, ``logs``, ``timeouts``, ``resources`` or ``monitors`` for ``diag``."""
    urls: tuple[str, ...] = ()
    count: int = 1
    log_name: str | None = None
    target: str | None = None
    """The instance (``host`` or ``host:port``) for ``diag resources``."""
    check: str | None = None
    """Part of a check's name or URL for ``diag monitors``."""
    runbook_action: str | None = None
    """``list`` or ``run`` for ``runbook``; the name is in ``runbook_name``, parameters in ``text``."""
    runbook_name: str | None = None

    @property
    def needs_incident(self) -> bool:
        return USAGES[self.name].needs_incident


def usage_error(name: str, problem: str) -> UserError:
    usage = USAGES[name]
    return UserError(f"{problem}\nUsage: `/incident {usage.syntax}` — for example `{usage.example}`")


def _take_incident_ref(text: str) -> tuple[str, IncidentRef | None]:
    """Pull a channel reference (``<#C…|inc-12-x>`` or ``#inc-12-x``) out of the text."""
    match = _CHANNEL.search(text)
    if match:
        rest = (text[: match.start()] + text[match.end() :]).strip()
        return re.sub(r"\s+", " ", rest), IncidentRef(channel_id=match["id"], channel_name=match["name"])
    match = _HASH_NAME.search(text)
    if match:
        rest = (text[: match.start()] + text[match.end() :]).strip()
        return re.sub(r"\s+", " ", rest), IncidentRef(channel_name=match["name"])
    return text, None


def parse(text: str) -> Command:
    """Parse the text after ``/incident``."""
    text = text.strip()
    if not text:
        return Command("help")
    word, _, rest = text.partition(" ")
    name = ALIASES.get(word.lower(), word.lower())
    if name not in USAGES:
        raise UserError(f"I don't know `{word}`. Try `/incident help` for the list of commands.")
    rest = rest.strip()
    if name in ("help", "declare"):
        return Command(name, text=rest)
    if name == "notify":
        rest, ref = _take_incident_ref(rest)
        return Command(name, text=rest, incident=ref)
    rest, ref = _take_incident_ref(rest)
    return replace(_parse_args(name, rest), incident=ref)


def _parse_args(name: str, rest: str) -> Command:
    first, _, tail = rest.partition(" ")
    tail = tail.strip()
    if name == "status":
        try:
            phase = Phase(first.lower())
        except ValueError:
            raise usage_error(
                name, f"`{first or '(nothing)'}` is not a status." if first else "Which status?"
            ) from None
        return Command(name, phase=phase, text=tail)
    if name == "sev":
        value = first.upper().removeprefix("SEV")
        if value not in {"1", "2", "3", "4"} or tail:
            raise usage_error(name, f"`{rest or '(nothing)'}` is not a severity from 1 to 4.")
        return Command(name, severity=Severity(int(value)))
    if name == "role":
        try:
            role = Role(first.lower())
        except ValueError:
            raise usage_error(name, f"`{first or '(nothing)'}` is not a role.") from None
        user = _USER.match(tail)
        if not user:
            raise usage_error(name, "Name the person with an @mention (pick them from Slack's autocomplete).")
        return Command(name, role=role, user_id=user["id"])
    if name == "escalate":
        if not rest:
            return Command(name)
        user = _USER.match(rest)
        if user:
            return Command(name, user_id=user["id"])
        if " " in rest or rest.startswith("@"):
            raise usage_error(name, f"`{rest}` is neither a service name nor an @mention.")
        return Command(name, service=rest)
    if name == "update":
        if not rest:
            raise usage_error(name, "The update needs some text.")
        return Command(name, text=rest)
    if name == "timeline":
        if not rest:
            return Command(name)
        if first.lower() != "add" or not tail:
            raise usage_error(name, "To add to the timeline, write `add` and the text.")
        return Command(name, add=True, text=tail)
    if name == "diag":
        return _parse_diag(first.lower(), tail)
    if name == "runbook":
        return _parse_runbook(first.lower(), tail)
    if name in ("resolve",):
        return Command(name, text=rest)
    if rest:
        raise usage_error(name, f"`{name}` takes no arguments, but got `{rest}`.")
    return Command(name)


def _parse_runbook(action: str, rest: str) -> Command:
    if action == "list" and not rest:
        return Command("runbook", runbook_action="list")
    if action == "run":
        name, _, params = rest.partition(" ")
        if not name:
            raise usage_error("runbook", "Which runbook? `/incident runbook list` shows them.")
        return Command("runbook", runbook_action="run", runbook_name=name, text=params.strip())
    raise usage_error("runbook", f"`{action or '(nothing)'}` is not `list` or `run`.")


def unwrap_url(token: str) -> str:
    """Slack sends links as ``<https://x|x>`` or ``<https://x>``: the URL inside."""
    match = _SLACK_LINK.match(token)
    url = match["url"] if match else token
    return url.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _parse_diag(kind: str, rest: str) -> Command:
    if kind == "http":
        return _parse_diag_http(rest)
    if kind == "logs":
        words = rest.split()
        if len(words) != 1:
            problem = (
                "Name one configured log source." if not words else f"`{rest}` is not one log source name."
            )
            raise usage_error("diag", problem)
        return Command("diag", diag_kind="logs", log_name=words[0])
    if kind == "timeouts":
        if rest:
            raise usage_error(
                "diag", f"`diag timeouts` takes no arguments (it reads the configured files), not `{rest}`."
            )
        return Command("diag", diag_kind="timeouts")
    if kind == "resources":
        words = rest.split()
        if len(words) != 1:
            raise usage_error(
                "diag",
                "Name one target (`host` or `host:port`)." if not words else f"`{rest}` is not one target.",
            )
        if not _TARGET.match(words[0]):
            raise usage_error("diag", f"`{words[0]}` is not a `host` or `host:port`.")
        return Command("diag", diag_kind="resources", target=words[0])
    if kind == "monitors":
        check = unwrap_url(rest) if rest else None
        if check is not None and len(check) > MAX_CHECK_NAME:
            raise usage_error("diag", f"A check name is at most {MAX_CHECK_NAME} characters.")
        return Command("diag", diag_kind="monitors", check=check)
    raise usage_error(
        "diag", f"`{kind}` is not a diagnosis; use {DIAG_KINDS}." if kind else "Which diagnosis?"
    )


def _parse_diag_http(rest: str) -> Command:
    urls: list[str] = []
    count: int | None = None
    words = rest.split()
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--count" or word.startswith("--count="):
            if count is not None:
                raise usage_error("diag", "Give `--count` once.")
            if word == "--count":
                if index >= len(words):
                    raise usage_error("diag", "`--count` needs a number.")
                value = words[index]
                index += 1
            else:
                value = word.removeprefix("--count=")
            if not value.isdigit() or int(value) < 1:
                raise usage_error("diag", f"`{value}` is not a count (a whole number from 1).")
            count = int(value)
        elif word.startswith("-"):
            raise usage_error("diag", f"`{word}` is not an option here; only `--count N` is.")
        else:
            urls.append(unwrap_url(word))
    if not urls:
        raise usage_error("diag", "Which URL? Give at least one.")
    if len(urls) > MAX_DIAG_URLS:
        raise usage_error("diag", f"At most {MAX_DIAG_URLS} URLs at once, not {len(urls)}.")
    return Command("diag", diag_kind="http", urls=tuple(urls), count=count or 1)


def help_text() -> str:
    lines = [
        "*`/incident` commands* (in an incident channel the incident is implied; elsewhere add `#inc-…`)"
    ]
    for usage in USAGES.values():
        lines.append(f"• `/incident {usage.syntax}` — {usage.summary}. _e.g._ `{usage.example}`")
    return "\n".join(lines)
