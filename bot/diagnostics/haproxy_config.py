"""A reader for HAProxy configuration files.

Sections (``global``, ``defaults``, ``frontend``, ``backend``, ``listen``;
others are skipped), ``timeout …``, ``retries``, ``option redispatch``,
``bind``/``server`` addresses and the ``default_backend``/``use_backend``
routing. Proxies inherit from the last ``defaults`` section above them, or
from a named one with ``from NAME`` (HAProxy 2.4+), as HAProxy itself does.

HAProxy times are ``us``/``ms``/``s``/``m``/``h``/``d``; a bare number is
milliseconds. A missing or zero timeout means "no limit" (``seconds=None``).
Problems (unknown units, stray lines) are collected, not raised; only an
unreadable file raises ``UserError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.diagnostics.finding_model import ConfigSetting, SourceRef
from bot.errors import UserError

PROXY_SECTIONS = ("defaults", "frontend", "backend", "listen")
OTHER_SECTIONS = (
    "global",
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "crt-store",
    "log-forward",
    "traces",
    "fcgi-app",
)
TIMEOUT_NAMES = (
    "connect",
    "client",
    "server",
    "queue",
    "http-request",
    "http-keep-alive",
    "tunnel",
    "check",
    "client-fin",
    "server-fin",
    "tarpit",
)
# Keywords removed in HAProxy 2.1 that old configurations still carry.
_LEGACY_TIMEOUTS = {"contimeout": "connect", "clitimeout": "client", "srvtimeout": "server"}
DEFAULT_RETRIES = 3
_UNITS = {"us": 0.000001, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIME = re.compile(r"^(\d+)(us|ms|s|m|h|d)?$")


def parse_haproxy_duration(text: str) -> float | None:
    """HAProxy time syntax in seconds (bare numbers are milliseconds); None when invalid."""
    match = _TIME.match(text.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2) or "ms"]


@dataclass(frozen=True, slots=True)
class HaproxyAddress:
    """A ``bind`` or ``server`` address; ``port`` is None for unix sockets and ranges."""

    name: str
    host: str
    port: int | None
    where: SourceRef


@dataclass(frozen=True, slots=True)
class HaproxyProxy:
    """A ``defaults``, ``frontend``, ``backend`` or ``listen`` section, after inheritance."""

    kind: str
    name: str
    where: SourceRef
    mode: str
    timeouts: Mapping[str, ConfigSetting]
    retries: int
    retries_where: SourceRef | None
    redispatch: bool
    redispatch_where: SourceRef | None
    default_backend: str | None = None
    use_backends: tuple[str, ...] = ()
    binds: tuple[HaproxyAddress, ...] = ()
    servers: tuple[HaproxyAddress, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}" if self.name else self.kind

    @property
    def faces_clients(self) -> bool:
        return self.kind in ("frontend", "listen")

    @property
    def faces_servers(self) -> bool:
        return self.kind in ("backend", "listen")

    def timeout(self, name: str) -> ConfigSetting | None:
        """The timeout as configured (own or inherited), None when unset or zero."""
        setting = self.timeouts.get(name)
        if setting is None or setting.seconds is None:
            return None
        return setting

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "where": str(self.where),
            "mode": self.mode,
            "timeouts": {name: setting.to_dict() for name, setting in sorted(self.timeouts.items())},
            "retries": self.retries,
            "redispatch": self.redispatch,
            "backends": self.backends,
            "servers": [f"{s.host}:{s.port}" if s.port else s.host for s in self.servers],
        }

    @property
    def backends(self) -> list[str]:
        """Backends this frontend can route to, in the order written."""
        names = [self.default_backend] if self.default_backend else []
        return names + [name for name in self.use_backends if name not in names]


@dataclass(frozen=True, slots=True)
class HaproxyConfig:
    file: str
    proxies: tuple[HaproxyProxy, ...]
    problems: tuple[tuple[SourceRef, str], ...]

    def proxy(self, kind: str, name: str) -> HaproxyProxy | None:
        for proxy in self.proxies:
            if proxy.name == name and (proxy.kind == kind or proxy.kind == "listen"):
                return proxy
        return None

    def backends_of(self, proxy: HaproxyProxy) -> list[HaproxyProxy]:
        """The backend sections a frontend routes to (a listen section is its own backend)."""
        if proxy.kind == "listen":
            return [proxy]
        found = [self.proxy("backend", name) for name in proxy.backends]
        return [backend for backend in found if backend is not None]

    @property
    def bind_ports(self) -> set[int]:
        return {bind.port for proxy in self.proxies for bind in proxy.binds if bind.port is not None}


def _words(line: str) -> list[str]:
    """Split one line like HAProxy: quotes group, backslash escapes, ``#`` starts a comment."""
    words: list[str] = []
    current: list[str] = []
    quote: str | None = None
    in_word = False
    index = 0
    while index < len(line):
        char = line[index]
        if quote is not None:
            if char == quote:
                quote = None
            elif char == "\\" and quote == '"' and index + 1 < len(line):
                index += 1
                current.append(line[index])
            else:
                current.append(char)
        elif char in "\"'":
            quote, in_word = char, True
        elif char == "\\" and index + 1 < len(line):
            index += 1
            current.append(line[index])
            in_word = True
        elif char == "#":
            break
        elif char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
        index += 1
    if in_word:
        words.append("".join(current))
    return words


def _address(name: str, text: str, where: SourceRef) -> Iterator[HaproxyAddress]:
    """``bind`` accepts comma-separated lists; ``*``/empty hosts mean all addresses."""
    for part in text.split(","):
        if part.startswith(("unix@", "abns@", "/", "fd@", "sockpair@")):
            yield HaproxyAddress(name, part, None, where)
            continue
        for prefix in ("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@", "quic4@", "quic6@"):
            part = part.removeprefix(prefix)
        host, sep, port = part.rpartition(":")
        if not sep:
            yield HaproxyAddress(name, part, None, where)
        elif port.isdigit():
            yield HaproxyAddress(name, host.strip("[]") or "*", int(port), where)
        else:
            yield HaproxyAddress(name, host.strip("[]") or "*", None, where)


@dataclass
class _Section:
    kind: str
    name: str
    where: SourceRef
    parent: str | None = None
    mode: str | None = None
    timeouts: dict[str, ConfigSetting] = field(default_factory=dict)
    retries: tuple[int, SourceRef] | None = None
    redispatch: tuple[bool, SourceRef] | None = None
    default_backend: str | None = None
    use_backends: list[str] = field(default_factory=list)
    binds: list[HaproxyAddress] = field(default_factory=list)
    servers: list[HaproxyAddress] = field(default_factory=list)


def _apply(
    section: _Section, words: list[str], where: SourceRef, problems: list[tuple[SourceRef, str]]
) -> None:
    keyword = words[0]
    args = words[1:]
    if keyword in _LEGACY_TIMEOUTS and args:
        keyword, args = "timeout", [_LEGACY_TIMEOUTS[keyword], *args]
    if keyword == "timeout":
        if len(args) < 2:
            problems.append((where, "timeout needs a name and a value"))
            return
        name, raw = args[0], args[1]
        if name not in TIMEOUT_NAMES:
            problems.append((where, f"unknown timeout '{name}'"))
            return
        seconds = parse_haproxy_duration(raw)
        if seconds is None:
            problems.append((where, f"invalid time '{raw}' for timeout {name}"))
            return
        section.timeouts[name] = ConfigSetting(f"timeout {name}", seconds or None, raw, where)
    elif keyword == "retries":
        if args and args[0].isdigit():
            section.retries = (int(args[0]), where)
        else:
            problems.append((where, "retries needs a number"))
    elif keyword == "option" and args[:1] == ["redispatch"]:
        section.redispatch = (True, where)
    elif keyword == "no" and args[:2] == ["option", "redispatch"]:
        section.redispatch = (False, where)
    elif keyword == "mode" and args:
        section.mode = args[0]
    elif keyword == "default_backend" and args:
        section.default_backend = args[0]
    elif keyword == "use_backend" and args:
        section.use_backends.append(args[0])
    elif keyword == "bind" and args:
        section.binds.extend(_address("bind", args[0], where))
    elif keyword == "server" and len(args) >= 2:
        section.servers.extend(_address(args[0], args[1], where))


def _resolve(section: _Section, base: _Section | None) -> HaproxyProxy:
    """Merge a section over the defaults it inherits from."""
    timeouts = dict(base.timeouts) if base else {}
    timeouts.update(section.timeouts)
    retries = section.retries or (base.retries if base else None)
    redispatch = section.redispatch or (base.redispatch if base else None)
    mode = section.mode or (base.mode if base else None) or "tcp"
    return HaproxyProxy(
        kind=section.kind,
        name=section.name,
        where=section.where,
        mode=mode,
        timeouts=timeouts,
        retries=retries[0] if retries else DEFAULT_RETRIES,
        retries_where=retries[1] if retries else None,
        redispatch=redispatch[0] if redispatch else False,
        redispatch_where=redispatch[1] if redispatch else None,
        default_backend=section.default_backend,
        use_backends=tuple(section.use_backends),
        binds=tuple(section.binds),
        servers=tuple(section.servers),
    )


def _flatten(proxy: HaproxyProxy) -> _Section:
    """A resolved defaults section as a base for the sections below it."""
    section = _Section(proxy.kind, proxy.name, proxy.where, mode=proxy.mode, timeouts=dict(proxy.timeouts))
    if proxy.retries_where is not None:
        section.retries = (proxy.retries, proxy.retries_where)
    if proxy.redispatch_where is not None:
        section.redispatch = (proxy.redispatch, proxy.redispatch_where)
    return section


def parse_haproxy_text(text: str, file: str = "haproxy.cfg") -> HaproxyConfig:
    """Parse configuration text (pure; no file access)."""
    problems: list[tuple[SourceRef, str]] = []
    proxies: list[HaproxyProxy] = []
    named_defaults: dict[str, _Section] = {}
    last_defaults: _Section | None = None
    current: _Section | None = None
    skipping = False

    def close() -> None:
        nonlocal last_defaults
        if current is None:
            return
        if current.parent is not None and current.parent not in named_defaults:
            problems.append((current.where, f"defaults section '{current.parent}' is not defined above"))
        if current.parent is not None:
            base = named_defaults.get(current.parent)
        else:
            # A new defaults section starts from scratch; proxies take the last one.
            base = None if current.kind == "defaults" else last_defaults
        resolved = _resolve(current, base)
        proxies.append(resolved)
        if current.kind == "defaults":
            flattened = _flatten(resolved)
            last_defaults = flattened
            if current.name:
                named_defaults[current.name] = flattened

    for number, line in enumerate(text.splitlines(), start=1):
        words = _words(line)
        if not words:
            continue
        where = SourceRef(file, number)
        keyword = words[0]
        if keyword in PROXY_SECTIONS:
            close()
            args = words[1:]
            parent = None
            if "from" in args:
                at = args.index("from")
                parent = args[at + 1] if at + 1 < len(args) else None
                args = args[:at]
            name = args[0] if args else ""
            current = _Section(keyword, name, where, parent=parent)
            if keyword == "listen" and len(args) > 1:
                current.binds.extend(_address("bind", args[1], where))
            skipping = False
        elif keyword in OTHER_SECTIONS:
            close()
            current, skipping = None, True
        elif current is not None:
            _apply(current, words, where, problems)
        elif not skipping:
            problems.append((where, f"'{keyword}' outside any section"))
    close()
    return HaproxyConfig(file=file, proxies=tuple(proxies), problems=tuple(problems))


def load_haproxy_config(path: str | Path) -> HaproxyConfig:
    """Read and parse ``path``; ``UserError`` when it cannot be read."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError as exc:
        raise UserError(f"{file}: no such HAProxy configuration file") from exc
    except OSError as exc:
        raise UserError(f"{file}: cannot read: {exc.strerror}") from exc
    return parse_haproxy_text(text, str(file))
