"""Access-log formats: nginx ``log_format`` and Apache ``LogFormat`` strings → a column layout.

A layout is one regex per line shape whose groups are the only columns the
analysis needs (client, time, request or path, status, latency, upstream,
host); every other field is matched but not captured, because each captured
group costs a bytes object per line on the hot path.

Each layout carries two regexes over the same shape:

- ``fast``: quoted fields are ``[^"]*``, a single negated character that the
  ``re`` engine scans much faster than a class. It can run across a newline
  when a line is broken, so it is trusted only when the number of matches in a
  chunk equals the number of lines (anchored ``^…$`` matches cannot share a
  line, so equal counts mean one match per line).
- ``strict``: never crosses a newline and understands Apache's ``\\"`` escapes;
  the parser falls back to it for a chunk whose counts differ.

Unknown variables and directives are a ``UserError`` naming them: a typo in a
format string must not silently turn every line into "malformed".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.errors import UserError

# Named presets (nginx spelling; Apache's ``%h %l %u %t "%r" %>s %b`` family
# produces the same line shapes).
PRESETS: dict[str, str] = {
    "combined": (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent"'
    ),
    "combined_rt": (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent" $request_time'
    ),
    "common": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
}
# Tried in this order when no format is given: most specific first, since a
# preset accepts trailing fields (``combined`` also reads ``combined_rt`` lines).
AUTO_ORDER = ("vhost_combined", "combined_rt", "combined", "common")

# Roles the analysis captures; everything else is matched and dropped.
CLIENT, TIME, TZ, REQUEST, PATH, STATUS, LATENCY, UPSTREAM, HOST = (
    "client",
    "time",
    "tz",
    "request",
    "path",
    "status",
    "latency",
    "upstream",
    "host",
)

# Regex pieces. The quoted-field body differs between the fast and the
# strict regex (see the module docstring).
_WORD = r"\S*"
_SPACEY = r"[^\n]*?"
_LIST = r"[^\s,]+(?:(?:,| :) [^\s,]+)*"
_STATUS = r"(\d{3})"
_CLF_TIME = r"(\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d):\d\d(?:\.\d+)? ([+-]\d{4})"
_ISO_TIME = r"(\d{4}-\d\d-\d\dT\d\d:\d\d):\d\d(?:\.\d+)?(Z|[+-]\d\d:?\d\d)"
_QUOTED_FAST = r'[^"]*'
_QUOTED_STRICT = r'[^"\\\n]*(?:\\.[^"\\\n]*)*'

# Time kinds: how ``bot.logs.times`` turns the captured key into a minute.
CLF, ISO8601, EPOCH, STRFTIME = "clf", "iso8601", "epoch", "strftime"


@dataclass(frozen=True)
class FormatField:
    """One variable or directive of a format string."""

    name: str  # as written: ``$status``, ``%>s``
    role: str | None  # captured role, or None
    kind: str  # token | spacey | list | status | time | latency
    time_kind: str = ""
    time_arg: str = ""
    regex: str = ""  # explicit regex for time fields (already grouped)
    scale: float = 1.0  # latency: multiply by this for seconds
    priority: int = 99  # latency: lower wins when several are present


@dataclass(frozen=True)
class FormatLiteral:
    text: str


@dataclass(frozen=True)
class LogLayout:
    """A compiled access-log format: regexes plus what each group holds."""

    name: str
    text: str
    dialect: str
    fast: re.Pattern[bytes]
    strict: re.Pattern[bytes]
    stamp: re.Pattern[bytes]  # captures only the full timestamp (first/last seen)
    columns: tuple[str, ...]
    time_kind: str
    time_arg: str
    latency_field: str | None
    latency_scale: float
    roles: dict[str, int] = field(default_factory=dict)
    tolerant: bool = False  # presets accept trailing fields after the last one
    items: tuple[FormatField | FormatLiteral, ...] = ()
    captured: tuple[int, ...] = ()  # indices into ``items`` of the captured fields, in group order

    def index(self, role: str) -> int | None:
        """The group index (0-based in ``findall`` tuples) of ``role``, or None."""
        return self.roles.get(role)


# --- nginx -----------------------------------------------------------------

_NGINX_TOKEN_VARS = frozenset(
    [
        "remote_user",
        "remote_port",
        "realip_remote_addr",
        "realip_remote_port",
        "binary_remote_addr",
        "args",
        "query_string",
        "is_args",
        "body_bytes_sent",
        "bytes_sent",
        "request_length",
        "connection",
        "connection_requests",
        "connection_time",
        "pid",
        "pipe",
        "scheme",
        "server_protocol",
        "https",
        "server_addr",
        "server_port",
        "hostname",
        "nginx_version",
        "request_id",
        "content_type",
        "content_length",
        "document_root",
        "realpath_root",
        "request_filename",
        "request_completion",
        "gzip_ratio",
        "limit_rate",
        "proxy_protocol_addr",
        "proxy_protocol_port",
        "proxy_protocol_server_addr",
        "proxy_protocol_server_port",
        "proxy_host",
        "proxy_port",
        "binary_remote_addr",
        "tcpinfo_rtt",
        "tcpinfo_rttvar",
        "tcpinfo_snd_cwnd",
        "tcpinfo_rcv_space",
        "msec_frac",
        "request_method",
        "status_class",
        "remote_addr_anon",
        "invalid_referer",
        "secure_link",
        "secure_link_expires",
        "date_local",
        "date_gmt",
        "limit_req_status",
        "limit_conn_status",
    ]
)
_NGINX_LIST_VARS = frozenset(
    [
        "upstream_connect_time",
        "upstream_header_time",
        "upstream_status",
        "upstream_bytes_received",
        "upstream_bytes_sent",
        "upstream_response_length",
        "upstream_cache_status",
        "upstream_queue_time",
        "upstream_first_byte_time",
        "upstream_session_time",
        "proxy_add_x_forwarded_for",
    ]
)
_NGINX_SPACEY_PREFIXES = ("http_", "sent_http_", "sent_trailer_", "upstream_http_", "request_body")
_NGINX_TOKEN_PREFIXES = (
    "cookie_",
    "arg_",
    "upstream_cookie_",
    "upstream_trailer_",
    "ssl_",
    "geoip_",
    "geoip2_",
    "jwt_",
    "realip_",
    "proxy_protocol_tlv_",
)


def _nginx_field(name: str) -> FormatField:
    label = f"${name}"
    special: dict[str, FormatField] = {
        "remote_addr": FormatField(label, CLIENT, "token"),
        "time_local": FormatField(label, TIME, "time", CLF, regex=_CLF_TIME),
        "time_iso8601": FormatField(label, TIME, "time", ISO8601, regex=_ISO_TIME),
        "msec": FormatField(label, TIME, "time", EPOCH, "1", regex=r"(\d+)\.\d+"),
        "request": FormatField(label, REQUEST, "spacey"),
        "request_uri": FormatField(label, PATH, "token"),
        "uri": FormatField(label, PATH, "token"),
        "document_uri": FormatField(label, PATH, "token"),
        "status": FormatField(label, STATUS, "status"),
        "request_time": FormatField(label, LATENCY, "latency", priority=0),
        "upstream_response_time": FormatField(label, LATENCY, "list", priority=5),
        "upstream_addr": FormatField(label, UPSTREAM, "list"),
        "host": FormatField(label, HOST, "token"),
        "server_name": FormatField(label, HOST, "token"),
        "http_host": FormatField(label, HOST, "token"),
    }
    if name in special:
        return special[name]
    if name in _NGINX_TOKEN_VARS or name.startswith(_NGINX_TOKEN_PREFIXES):
        return FormatField(label, None, "token")
    if name in _NGINX_LIST_VARS:
        return FormatField(label, None, "list")
    if name.startswith(_NGINX_SPACEY_PREFIXES):
        return FormatField(label, None, "spacey")
    raise UserError(f"unknown nginx log_format variable ${name}")


_NGINX_VAR = re.compile(r"\$(?:\{(\w+)\}|([A-Za-z_]\w*))")


def _nginx_items(text: str) -> list[FormatField | FormatLiteral]:
    items: list[FormatField | FormatLiteral] = []
    pos = 0
    for match in _NGINX_VAR.finditer(text):
        if match.start() > pos:
            items.append(FormatLiteral(text[pos : match.start()]))
        items.append(_nginx_field(match.group(1) or match.group(2)))
        pos = match.end()
    if pos < len(text):
        items.append(FormatLiteral(text[pos:]))
    return items


# --- Apache ----------------------------------------------------------------

_APACHE_DIRECTIVE = re.compile(r"%(?:!?\d+(?:,\d+)*)?([<>])?(?:\{([^}]*)\})?(\^t[io]|[A-Za-z%])")
_STRFTIME = {
    "d": r"\d\d",
    "e": r" ?\d{1,2}",
    "b": r"[A-Za-z]{3}",
    "h": r"[A-Za-z]{3}",
    "B": r"[A-Za-z]+",
    "a": r"[A-Za-z]{3}",
    "A": r"[A-Za-z]+",
    "Y": r"\d{4}",
    "y": r"\d\d",
    "m": r"\d\d",
    "H": r"\d\d",
    "I": r"\d\d",
    "M": r"\d\d",
    "S": r"\d\d",
    "p": r"[AP]M",
    "j": r"\d{3}",
    "z": r"[+-]\d{4}",
    "Z": r"[A-Za-z]+",
    "T": r"\d\d:\d\d:\d\d",
    "R": r"\d\d:\d\d",
    "F": r"\d{4}-\d\d-\d\d",
    "D": r"\d\d/\d\d/\d\d",
    "%": "%",
}
# strptime understands all of these except the composites, expanded here.
_STRFTIME_EXPAND = {"T": "%H:%M:%S", "R": "%H:%M", "F": "%Y-%m-%d", "D": "%m/%d/%y", "h": "%b"}


def _strftime_field(label: str, fmt: str) -> FormatField:
    pattern: list[str] = []
    expanded: list[str] = []
    pos = 0
    for match in re.finditer(r"%(.)", fmt):
        pattern.append(re.escape(fmt[pos : match.start()]))
        expanded.append(fmt[pos : match.start()])
        code = match.group(1)
        if code not in _STRFTIME:
            raise UserError(f"unsupported strftime code %{code} in Apache time format {label}")
        pattern.append(_STRFTIME[code])
        expanded.append(_STRFTIME_EXPAND.get(code, f"%{code}"))
        pos = match.end()
    pattern.append(re.escape(fmt[pos:]))
    expanded.append(fmt[pos:])
    return FormatField(label, TIME, "time", STRFTIME, "".join(expanded), regex=f"({''.join(pattern)})")


def _apache_time(label: str, arg: str | None) -> FormatField:
    if arg is None:
        return FormatField(label, TIME, "time", CLF, regex=rf"\[{_CLF_TIME}\]")
    fmt = arg.removeprefix("begin:").removeprefix("end:")
    # The key keeps whole seconds only: finer keys would make every line distinct.
    epoch = {"sec": (r"(\d+)", "1"), "msec": (r"(\d+)\d{3}", "1000"), "usec": (r"(\d+)\d{6}", "1000000")}
    if fmt in epoch:
        regex, divisor = epoch[fmt]
        return FormatField(label, TIME, "time", EPOCH, divisor, regex=regex)
    if fmt in ("msec_frac", "usec_frac"):
        return FormatField(label, None, "token")
    return _strftime_field(label, fmt)


def _apache_field(directive: str, arg: str | None, label: str) -> FormatField:
    if directive == "t":
        return _apache_time(label, arg)
    if directive == "T":
        unit = (arg or "s").lower()
        scales = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
        if unit not in scales:
            raise UserError(f"unknown unit {arg!r} in Apache LogFormat directive {label}")
        return FormatField(label, LATENCY, "latency", scale=scales[unit], priority=2 if unit == "s" else 1)
    if directive == "D":
        return FormatField(label, LATENCY, "latency", scale=1e-6, priority=1)
    if directive in ("h", "a"):
        return FormatField(label, CLIENT if arg in (None, "c") else None, "token")
    if directive == "s":
        return FormatField(label, STATUS, "status")
    if directive == "r":
        return FormatField(label, REQUEST, "spacey")
    if directive == "U":
        return FormatField(label, PATH, "token")
    if directive in ("v", "V"):
        return FormatField(label, HOST, "token")
    if directive == "i":
        if arg is not None and arg.lower() == "host":
            return FormatField(label, HOST, "token")
        return FormatField(label, None, "spacey")
    if directive == "e":
        if arg in ("BALANCER_WORKER_NAME", "BALANCER_WORKER_ROUTE"):
            return FormatField(label, UPSTREAM, "token")
        return FormatField(label, None, "token")
    if directive in ("C", "n", "o", "^ti", "^to"):
        if arg is None:
            raise UserError(f"Apache LogFormat directive {label} needs a {{name}}")
        return FormatField(label, None, "spacey")
    if directive in "ABbfHklLmpPqRuXIOS":
        return FormatField(label, None, "token")
    raise UserError(f"unknown Apache LogFormat directive {label}")


def _apache_items(text: str) -> list[FormatField | FormatLiteral]:
    items: list[FormatField | FormatLiteral] = []
    pos = 0
    while pos < len(text):
        percent = text.find("%", pos)
        if percent < 0:
            items.append(FormatLiteral(text[pos:]))
            break
        if percent > pos:
            items.append(FormatLiteral(text[pos:percent]))
        match = _APACHE_DIRECTIVE.match(text, percent)
        if match is None:
            bad = text[percent : percent + 12].split(" ")[0]
            raise UserError(f"unknown Apache LogFormat directive {bad}")
        if match.group(3) == "%":
            items.append(FormatLiteral("%"))
        else:
            items.append(_apache_field(match.group(3), match.group(2), match.group(0)))
        pos = match.end()
    return items


# --- compilation -----------------------------------------------------------


def _unwrap(text: str) -> str:
    """Accept a whole config directive too: ``log_format main '…' '…';`` or
    ``LogFormat "…" nickname`` → just the format string."""
    stripped = text.strip()
    if stripped.startswith("log_format"):
        parts = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", stripped)
        if not parts:
            raise UserError("log_format directive without a quoted format string")
        return "".join(single or double for single, double in parts)
    if stripped.startswith("LogFormat"):
        match = re.match(r'LogFormat\s+"((?:[^"\\]|\\.)*)"', stripped)
        if match is None:
            raise UserError("LogFormat directive without a quoted format string")
        return match.group(1).replace('\\"', '"').replace("\\\\", "\\")
    return text


def _quoted(items: list[FormatField | FormatLiteral], at: int) -> bool:
    before = items[at - 1] if at > 0 else None
    after = items[at + 1] if at + 1 < len(items) else None
    return (
        isinstance(before, FormatLiteral)
        and before.text.endswith('"')
        and isinstance(after, FormatLiteral)
        and after.text.startswith('"')
    )


def _piece(item: FormatField, quoted: bool, capture: bool, strict: bool) -> str:
    """The regex for one field."""
    if item.kind == "time":
        return item.regex if capture else re.sub(r"\((?!\?)", "(?:", item.regex)
    if item.kind == "status":
        return _STATUS if capture else r"\d{3}"
    if quoted:
        body = _QUOTED_STRICT if strict else _QUOTED_FAST
    elif item.kind == "list":
        body = _LIST
    elif item.kind == "spacey":
        body = _SPACEY
    else:
        body = _WORD
    return f"({body})" if capture else f"(?:{body})" if "|" in body else body


def _build(
    items: list[FormatField | FormatLiteral], latency: FormatField | None, *, strict: bool, tolerant: bool
) -> tuple[str, list[str], str, list[int]]:
    """(regex, captured roles in order, stamp regex, indices of the captured
    items). The stamp regex has the same shape but captures only the full
    timestamp."""
    parts: list[str] = ["^"]
    stamp: list[str] = ["^"]
    columns: list[str] = []
    captured: list[int] = []
    seen: set[str] = set()
    for at, item in enumerate(items):
        if isinstance(item, FormatLiteral):
            literal = re.escape(item.text)
            parts.append(literal)
            stamp.append(literal)
            continue
        role = item.role
        if role == LATENCY and item is not latency:
            role = None
        capture = role is not None and role not in seen
        quoted = _quoted(items, at)
        parts.append(_piece(item, quoted, capture, strict))
        if capture and role is not None:
            seen.add(role)
            columns.append(role)
            captured.append(at)
            if item.kind == "time" and item.regex.count("(") - item.regex.count("(?") == 2:
                columns.append(TZ)
        if item.kind == "time" and role == TIME and capture:
            whole = re.sub(r"\((?!\?)", "(?:", item.regex)
            stamp.append(f"({whole})")
        else:
            stamp.append(_piece(item, quoted, False, True))
    tail = r"(?: [^\n]*)?\r?$" if tolerant else r"\r?$"
    return "".join(parts) + tail, columns, "".join(stamp) + tail, captured


def compile_format(spec: str | None) -> LogLayout:
    """A layout for a preset name or an nginx/Apache format string.

    ``None`` is not accepted here (auto-detection needs data: see
    ``detect_format``). Raises ``UserError`` naming what is wrong.
    """
    if spec is None or not spec.strip():
        raise UserError("empty log format")
    name = spec.strip().lower()
    tolerant = name in PRESETS
    text = PRESETS[name] if tolerant else _unwrap(spec)
    if not tolerant:
        name = "custom"
    if _NGINX_VAR.search(text):
        dialect, items = "nginx", _nginx_items(text)
    elif "%" in text:
        dialect, items = "apache", _apache_items(text)
    else:
        raise UserError(
            f"log format {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a format string "
            "with nginx $variables or Apache %directives"
        )
    fields = [item for item in items if isinstance(item, FormatField)]
    roles = {item.role for item in fields}
    if STATUS not in roles:
        raise UserError("the log format has no status field ($status, %s or %>s)")
    times = [item for item in fields if item.role == TIME]
    if not times:
        raise UserError("the log format has no time field ($time_local, $time_iso8601, $msec or %t)")
    latencies = sorted((item for item in fields if item.role == LATENCY), key=lambda item: item.priority)
    latency = latencies[0] if latencies else None
    fast, columns, stamp, captured = _build(items, latency, strict=False, tolerant=tolerant)
    strict, _, _, _ = _build(items, latency, strict=True, tolerant=tolerant)
    try:
        compiled = (re.compile(fast.encode(), re.M), re.compile(strict.encode(), re.M))
        stamp_re = re.compile(stamp.encode(), re.M)
    except re.error as exc:  # pragma: no cover - the builder escapes literals
        raise UserError(f"log format {spec!r} does not compile: {exc}") from exc
    return LogLayout(
        name=name,
        text=text,
        dialect=dialect,
        fast=compiled[0],
        strict=compiled[1],
        stamp=stamp_re,
        columns=tuple(columns),
        time_kind=times[0].time_kind,
        time_arg=times[0].time_arg,
        latency_field=latency.name if latency else None,
        latency_scale=latency.scale if latency else 1.0,
        roles={role: at for at, role in enumerate(columns)},
        tolerant=tolerant,
        items=tuple(items),
        captured=tuple(captured),
    )


def detect_format(sample: bytes) -> LogLayout | None:
    """The first preset (most specific first) that reads at least 80 % of the
    non-empty lines of ``sample``; None when none does."""
    lines = [line for line in sample.split(b"\n") if line.strip()]
    if not lines:
        return None
    for name in AUTO_ORDER:
        layout = compile_format(name)
        matched = sum(1 for line in lines if layout.strict.match(line))
        if matched >= 0.8 * len(lines):
            return layout
    return None
