"""A tolerant reader for nginx configuration files.

It tokenises the way nginx does (blocks, ``;``, comments, quoted strings,
backslash escapes, ``${var}``), follows ``include`` (globs, paths relative to
the main file's directory, as nginx's ``-c`` sets the configuration prefix),
and then works out, for every ``location`` that passes requests on
(``proxy_pass``, ``fastcgi_pass``, ``uwsgi_pass``, ``scgi_pass``,
``grpc_pass``), the effective timeouts after http → server → location
inheritance, plus every ``upstream`` with its servers' ``max_fails`` /
``fail_timeout`` and keep-alive settings.

Nothing here talks to nginx; syntax problems become ``problems`` rather than
exceptions, so a half-broken file still yields what can be read. Only an
unreadable main file raises (``UserError``).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.diagnostics.finding_model import ConfigSetting, SourceRef, format_seconds
from bot.errors import UserError

PASS_MODULES = ("proxy", "fastcgi", "uwsgi", "scgi", "grpc")
"""Modules whose ``<module>_pass`` hands a request to a backend."""

# nginx's documented defaults (ngx_http_*_module reference pages).
NGINX_DEFAULTS: dict[str, float] = {
    **{f"{module}_{kind}_timeout": 60.0 for module in PASS_MODULES for kind in ("read", "connect", "send")},
    "keepalive_timeout": 75.0,
    "client_body_timeout": 60.0,
    "client_header_timeout": 60.0,
    "send_timeout": 60.0,
}
DEFAULT_MAX_FAILS = 1
DEFAULT_FAIL_TIMEOUT = 10.0
DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT = 60.0

_MAX_INCLUDE_DEPTH = 32
_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "M": 2592000.0,
    "y": 31536000.0,
}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)?")
_SCHEMES = {"http": 80, "https": 443, "grpc": None, "grpcs": None, "uwsgi": None, "suwsgi": None}


def parse_nginx_duration(text: str) -> float | None:
    """nginx time syntax in seconds: ``30``, ``500ms``, ``1m30s``, ``1h 30m``; None when invalid."""
    compact = text.replace(" ", "")
    if not compact:
        return None
    position, total = 0, 0.0
    while position < len(compact):
        match = _DURATION_PART.match(compact, position)
        if match is None:
            return None
        total += int(match.group(1)) * _UNITS[match.group(2) or "s"]
        position = match.end()
    return total


# --------------------------------------------------------------------- syntax tree


@dataclass(frozen=True, slots=True)
class NginxDirective:
    """One directive; ``children`` is None for simple directives, a tuple for blocks."""

    name: str
    args: tuple[str, ...]
    where: SourceRef
    children: tuple[NginxDirective, ...] | None = None

    def find(self, name: str) -> list[NginxDirective]:
        """Direct children called ``name``."""
        return [child for child in self.children or () if child.name == name]


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    line: int
    quoted: bool

    def is_punct(self, char: str) -> bool:
        return not self.quoted and self.text == char


def _unescape(chars: str) -> str:
    """nginx keeps backslashes except before quotes, backslash, t, r and n."""
    out: list[str] = []
    index = 0
    while index < len(chars):
        char = chars[index]
        if char == "\\" and index + 1 < len(chars):
            following = chars[index + 1]
            if following in "\"'\\":
                out.append(following)
                index += 2
                continue
            if following in "trn":
                out.append({"t": "\t", "r": "\r", "n": "\n"}[following])
                index += 2
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _tokenize(text: str, file: str, problems: list[tuple[SourceRef, str]]) -> Iterator[_Token]:
    index, line, length = 0, 1, len(text)
    while index < length:
        char = text[index]
        if char == "\n":
            line += 1
            index += 1
        elif char.isspace():
            index += 1
        elif char == "#":
            end = text.find("\n", index)
            index = length if end < 0 else end
        elif char in ";{}":
            yield _Token(char, line, False)
            index += 1
        elif char in "\"'":
            start_line, index = line, index + 1
            raw: list[str] = []
            while index < length and text[index] != char:
                if text[index] == "\\" and index + 1 < length:
                    raw.append(text[index : index + 2])
                    index += 2
                    continue
                if text[index] == "\n":
                    line += 1
                raw.append(text[index])
                index += 1
            if index >= length:
                problems.append((SourceRef(file, start_line), "unterminated quoted string"))
            index += 1
            yield _Token(_unescape("".join(raw)), start_line, True)
        else:
            start = index
            while index < length:
                char = text[index]
                if char == "\\" and index + 1 < length:
                    index += 2
                    continue
                # "${name}" is a variable, not the start of a block.
                if char == "$" and index + 1 < length and text[index + 1] == "{":
                    close = text.find("}", index)
                    index = length if close < 0 else close + 1
                    continue
                if char.isspace() or char in ";{":
                    break
                index += 1
            yield _Token(_unescape(text[start:index]), line, False)


@dataclass
class _ParseContext:
    base_dir: Path
    problems: list[tuple[SourceRef, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    stack: list[Path] = field(default_factory=list)


def _parse_tokens(
    tokens: list[_Token], file: str, context: _ParseContext, depth: int
) -> tuple[NginxDirective, ...]:
    position = 0

    def block(inside: bool, opened_at: int) -> tuple[NginxDirective, ...]:
        nonlocal position
        directives: list[NginxDirective] = []
        words: list[_Token] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token.is_punct(";"):
                if words:
                    directives.extend(_statement(words, file, context, depth))
                words = []
            elif token.is_punct("{"):
                if not words:
                    context.problems.append((SourceRef(file, token.line), "block without a directive name"))
                    words = [_Token("", token.line, False)]
                children = block(True, token.line)
                head = words[0]
                directives.append(
                    NginxDirective(
                        head.text, tuple(w.text for w in words[1:]), SourceRef(file, head.line), children
                    )
                )
                words = []
            elif token.is_punct("}"):
                if words:
                    context.problems.append(
                        (
                            SourceRef(file, words[0].line),
                            f'directive "{words[0].text}" is not terminated by ";"',
                        )
                    )
                if inside:
                    return tuple(directives)
                context.problems.append((SourceRef(file, token.line), 'unexpected "}"'))
                words = []
            else:
                words.append(token)
        if words:
            context.problems.append(
                (SourceRef(file, words[0].line), f'directive "{words[0].text}" is not terminated by ";"')
            )
        if inside:
            context.problems.append(
                (SourceRef(file, opened_at), 'block opened here is not closed (expecting "}")')
            )
        return tuple(directives)

    return block(False, 0)


def _statement(words: list[_Token], file: str, context: _ParseContext, depth: int) -> list[NginxDirective]:
    head = words[0]
    where = SourceRef(file, head.line)
    args = tuple(w.text for w in words[1:])
    if head.text != "include" or head.quoted:
        return [NginxDirective(head.text, args, where)]
    if len(args) != 1:
        context.problems.append((where, "include takes exactly one path"))
        return []
    # The included files' directives take the include's place, as in nginx.
    return list(_include(args[0], where, context, depth))


def _include(pattern: str, where: SourceRef, context: _ParseContext, depth: int) -> Iterator[NginxDirective]:
    if depth >= _MAX_INCLUDE_DEPTH:
        context.problems.append((where, f"include nesting deeper than {_MAX_INCLUDE_DEPTH}: {pattern}"))
        return
    path = Path(pattern)
    if not path.is_absolute():
        path = context.base_dir / path
    if glob.has_magic(str(path)):
        matches = sorted(Path(p) for p in glob.glob(str(path)))
        matches = [match for match in matches if match.is_file()]
    else:
        if not path.is_file():
            context.problems.append((where, f"included file not found: {path}"))
            return
        matches = [path]
    for match in matches:
        yield from _parse_file(match, context, depth + 1, where)


def _parse_file(
    path: Path, context: _ParseContext, depth: int, included_from: SourceRef | None
) -> tuple[NginxDirective, ...]:
    resolved = path.resolve()
    if resolved in context.stack:
        if included_from is not None:
            context.problems.append((included_from, f"include loop: {path}"))
        return ()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        if included_from is None:
            raise UserError(f"{path}: cannot read: {exc.strerror}") from exc
        context.problems.append((included_from, f"cannot read {path}: {exc.strerror}"))
        return ()
    file = str(path)
    context.files.append(file)
    context.stack.append(resolved)
    try:
        tokens = list(_tokenize(text, file, context.problems))
        return _parse_tokens(tokens, file, context, depth)
    finally:
        context.stack.pop()


# --------------------------------------------------------------------- effective model


@dataclass(frozen=True, slots=True)
class NginxUpstreamServer:
    address: str
    max_fails: int
    max_fails_where: SourceRef | None
    fail_timeout: ConfigSetting
    where: SourceRef
    backup: bool = False
    down: bool = False

    @property
    def port(self) -> int | None:
        return _port_of(self.address, default=80)


@dataclass(frozen=True, slots=True)
class NginxUpstream:
    name: str
    where: SourceRef
    servers: tuple[NginxUpstreamServer, ...]
    keepalive_connections: int | None
    keepalive_where: SourceRef | None
    keepalive_timeout: ConfigSetting


@dataclass(frozen=True, slots=True)
class NginxServer:
    names: tuple[str, ...]
    listen_ports: tuple[int, ...]
    where: SourceRef
    settings: Mapping[str, ConfigSetting]

    @property
    def label(self) -> str:
        return self.names[0] if self.names else "_"


@dataclass(frozen=True, slots=True)
class NginxLocation:
    """A ``location`` with the settings in force there."""

    server: NginxServer
    path: str
    where: SourceRef
    settings: Mapping[str, ConfigSetting]
    module: str | None = None
    pass_target: str | None = None
    pass_where: SourceRef | None = None
    upstream: str | None = None
    target: tuple[str, int | None] | None = None

    @property
    def label(self) -> str:
        return f"{self.server.label} location {self.path}"

    @property
    def passes(self) -> bool:
        return self.module is not None

    def timeout(self, kind: str) -> ConfigSetting:
        """``read``/``connect``/``send`` timeout of this location's pass module."""
        return self.settings[f"{self.module or 'proxy'}_{kind}_timeout"]

    def to_dict(self) -> dict[str, Any]:
        shown = [f"{self.module or 'proxy'}_{kind}_timeout" for kind in ("connect", "send", "read")]
        shown += ["client_body_timeout", "send_timeout", "keepalive_timeout"]
        return {
            "server": self.server.label,
            "location": self.path,
            "where": str(self.where),
            "pass": self.pass_target,
            "upstream": self.upstream,
            "settings": {name: self.settings[name].to_dict() for name in shown},
        }


@dataclass(frozen=True, slots=True)
class NginxConfig:
    main_file: str
    files: tuple[str, ...]
    directives: tuple[NginxDirective, ...]
    servers: tuple[NginxServer, ...]
    locations: tuple[NginxLocation, ...]
    upstreams: Mapping[str, NginxUpstream]
    problems: tuple[tuple[SourceRef, str], ...]

    @property
    def proxied_locations(self) -> tuple[NginxLocation, ...]:
        return tuple(location for location in self.locations if location.passes)

    @property
    def listen_ports(self) -> set[int]:
        return {port for server in self.servers for port in server.listen_ports}


def _port_of(address: str, default: int | None) -> int | None:
    """The TCP port in ``host:port``, ``[v6]:port``, ``port`` or ``*:port``; None for unix sockets."""
    if address.startswith("unix:"):
        return None
    if address.isdigit():
        return int(address)
    if address.startswith("["):
        _, _, rest = address.partition("]")
        return int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default
    host, sep, port = address.rpartition(":")
    if sep and host and port.isdigit():
        return int(port)
    return default


def _setting(
    name: str, directive: NginxDirective, problems: list[tuple[SourceRef, str]]
) -> ConfigSetting | None:
    if not directive.args:
        problems.append((directive.where, f"{name} needs a value"))
        return None
    raw = directive.args[0]
    seconds = parse_nginx_duration(raw)
    if seconds is None:
        problems.append((directive.where, f'invalid time "{raw}" for {name}'))
        return None
    return ConfigSetting(name, seconds, raw, directive.where)


def _scope(
    inherited: Mapping[str, ConfigSetting], block: NginxDirective, problems: list[tuple[SourceRef, str]]
) -> dict[str, ConfigSetting]:
    scope = dict(inherited)
    for child in block.children or ():
        if child.name in NGINX_DEFAULTS:
            setting = _setting(child.name, child, problems)
            if setting is not None:
                scope[child.name] = setting
    return scope


def _defaults() -> dict[str, ConfigSetting]:
    return {name: ConfigSetting(name, value, format_seconds(value)) for name, value in NGINX_DEFAULTS.items()}


def _upstream(block: NginxDirective, problems: list[tuple[SourceRef, str]]) -> NginxUpstream:
    servers: list[NginxUpstreamServer] = []
    keepalive: int | None = None
    keepalive_where: SourceRef | None = None
    keepalive_timeout = ConfigSetting("keepalive_timeout", DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT, "60s")
    for child in block.children or ():
        if child.name == "server" and child.args:
            max_fails, max_fails_where = DEFAULT_MAX_FAILS, None
            fail_timeout = ConfigSetting("fail_timeout", DEFAULT_FAIL_TIMEOUT, "10s")
            for arg in child.args[1:]:
                key, _, value = arg.partition("=")
                if key == "max_fails":
                    if value.isdigit():
                        max_fails, max_fails_where = int(value), child.where
                    else:
                        problems.append((child.where, f'invalid max_fails "{value}"'))
                elif key == "fail_timeout":
                    seconds = parse_nginx_duration(value)
                    if seconds is None:
                        problems.append((child.where, f'invalid fail_timeout "{value}"'))
                    else:
                        fail_timeout = ConfigSetting("fail_timeout", seconds, value, child.where)
            servers.append(
                NginxUpstreamServer(
                    address=child.args[0],
                    max_fails=max_fails,
                    max_fails_where=max_fails_where,
                    fail_timeout=fail_timeout,
                    where=child.where,
                    backup="backup" in child.args[1:],
                    down="down" in child.args[1:],
                )
            )
        elif child.name == "keepalive" and child.args and child.args[0].isdigit():
            keepalive, keepalive_where = int(child.args[0]), child.where
        elif child.name == "keepalive_timeout":
            setting = _setting("keepalive_timeout", child, problems)
            if setting is not None:
                keepalive_timeout = setting
    name = block.args[0] if block.args else ""
    return NginxUpstream(name, block.where, tuple(servers), keepalive, keepalive_where, keepalive_timeout)


def _pass_target(
    target: str, upstreams: Mapping[str, NginxUpstream]
) -> tuple[str | None, tuple[str, int | None] | None]:
    """(upstream name, (host, port)) for a ``*_pass`` argument; both None when it uses variables."""
    if "$" in target:
        return None, None
    scheme, sep, rest = target.partition("://")
    if not sep:
        scheme, rest = "", target
    hostport = rest.split("/", 1)[0]
    if hostport in upstreams:
        return hostport, None
    if hostport.startswith("unix:") or target.startswith("unix:"):
        return None, (target, None)
    default = _SCHEMES.get(scheme, 80) if scheme else None
    port = _port_of(hostport, default)
    host = hostport.rsplit(":", 1)[0] if port is not None and ":" in hostport else hostport
    return None, (host, port)


def _listen_ports(server: NginxDirective) -> tuple[int, ...]:
    listens = server.find("listen")
    if not listens:
        return (80,)
    ports = {_port_of(listen.args[0], 80) for listen in listens if listen.args}
    return tuple(sorted(port for port in ports if port is not None))


def _locations(
    block: NginxDirective,
    server: NginxServer,
    inherited: Mapping[str, ConfigSetting],
    upstreams: Mapping[str, NginxUpstream],
    problems: list[tuple[SourceRef, str]],
) -> Iterator[NginxLocation]:
    for child in block.find("location"):
        scope = _scope(inherited, child, problems)
        location = NginxLocation(server, " ".join(child.args), child.where, scope)
        for module in PASS_MODULES:
            found = child.find(f"{module}_pass")
            if found and found[0].args:
                directive = found[0]
                upstream, target = _pass_target(directive.args[0], upstreams)
                location = NginxLocation(
                    server,
                    location.path,
                    child.where,
                    scope,
                    module=module,
                    pass_target=directive.args[0],
                    pass_where=directive.where,
                    upstream=upstream,
                    target=target,
                )
                break
        yield location
        yield from _locations(child, server, scope, upstreams, problems)


def _model(
    main_file: str,
    files: list[str],
    directives: tuple[NginxDirective, ...],
    problems: list[tuple[SourceRef, str]],
) -> NginxConfig:
    https = [
        directive for directive in directives if directive.name == "http" and directive.children is not None
    ]
    # A fragment (a sites-enabled file read on its own) has no http block;
    # treat its top level as one so it can still be analysed.
    if not https and any(d.name in ("server", "upstream") for d in directives):
        https = [NginxDirective("http", (), SourceRef(main_file, 1), directives)]
    upstreams: dict[str, NginxUpstream] = {}
    for http in https:
        for block in http.find("upstream"):
            upstream = _upstream(block, problems)
            upstreams[upstream.name] = upstream
    servers: list[NginxServer] = []
    locations: list[NginxLocation] = []
    for http in https:
        http_scope = _scope(_defaults(), http, problems)
        for block in http.find("server"):
            scope = _scope(http_scope, block, problems)
            names = tuple(name for directive in block.find("server_name") for name in directive.args)
            server = NginxServer(names, _listen_ports(block), block.where, scope)
            servers.append(server)
            locations.extend(_locations(block, server, scope, upstreams, problems))
    return NginxConfig(
        main_file=main_file,
        files=tuple(files),
        directives=directives,
        servers=tuple(servers),
        locations=tuple(locations),
        upstreams=upstreams,
        problems=tuple(problems),
    )


def parse_nginx_text(text: str, file: str = "nginx.conf", base_dir: Path | None = None) -> NginxConfig:
    """Parse configuration text; includes resolve against ``base_dir`` (default: the cwd)."""
    context = _ParseContext(base_dir=base_dir or Path("."))
    context.files.append(file)
    directives = _parse_tokens(list(_tokenize(text, file, context.problems)), file, context, 0)
    return _model(file, context.files, directives, context.problems)


def load_nginx_config(path: str | Path) -> NginxConfig:
    """Read ``path`` and everything it includes; ``UserError`` when it cannot be read."""
    main = Path(path)
    if not main.is_file():
        raise UserError(f"{main}: no such nginx configuration file")
    context = _ParseContext(base_dir=main.parent)
    directives = _parse_file(main, context, 0, None)
    return _model(str(main), context.files, directives, context.problems)
