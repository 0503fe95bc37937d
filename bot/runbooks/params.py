"""Parameters: checking what a person typed, and placing it into step arguments.

A value given as ``key=value`` is checked against the parameter's type
(string with an optional pattern, int with bounds, bool, choice, a host of
the inventory, a configured service, an http(s) URL) and then placed into
argument *values* wherever ``{{ key }}`` appears. An argument that is exactly
``{{ key }}`` takes the typed value (an int stays an int); inside a longer
string it is text. Nothing here ever builds a command line: steps hand
arguments to APIs or as separate argv elements.

``{{ secret.NAME }}`` is left in place until the step runs (``fill_secrets``),
so plans, audit rows and timelines only ever show the secret's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from bot.errors import UserError
from bot.runbooks.model import Parameter, RunbookSpec
from bot.runbooks.secrets import SecretStore

PLACEHOLDER = re.compile(r"\{\{\s*((?:secret\.)?[A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SECRET_PREFIX = "secret."  # noqa: S105 - the marker of a secret reference, not a secret
# Control characters would let a value forge log lines or protocol lines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``["key=value", …]`` as a dict; a missing ``=`` is a ``UserError``."""
    given: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"`{item}`: parameters are given as key=value")
        given[key.strip()] = value
    return given


def coerce(parameter: Parameter, raw: str | int | bool, hosts: Sequence[str], services: Sequence[str]) -> Any:
    """``raw`` as the parameter's type, or ``UserError`` saying what is expected."""
    name, kind = parameter.name, parameter.type
    text = str(raw).strip() if not isinstance(raw, bool) else ("true" if raw else "false")
    if _CONTROL.search(text):
        raise UserError(f"{name}: control characters are not allowed")
    if kind == "int":
        try:
            number = int(text)
        except ValueError:
            raise UserError(f"{name}: expected a whole number, got `{text}`") from None
        if parameter.min is not None and number < parameter.min:
            raise UserError(f"{name}: at least {parameter.min}")
        if parameter.max is not None and number > parameter.max:
            raise UserError(f"{name}: at most {parameter.max}")
        return number
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise UserError(f"{name}: expected true or false, got `{text}`")
    if kind == "choice":
        if text not in parameter.choices:
            raise UserError(f"{name}: one of {', '.join(parameter.choices)}; got `{text}`")
        return text
    if kind == "host":
        if text not in hosts:
            known = ", ".join(hosts) or "none configured under [runbooks.hosts]"
            raise UserError(f"{name}: `{text}` is not an inventory host ({known})")
        return text
    if kind == "service":
        if text not in services:
            known = ", ".join(services) or "none configured under [services]"
            raise UserError(f"{name}: `{text}` is not a configured service ({known})")
        return text
    if kind == "url":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"{name}: expected an http(s) URL, got `{text}`")
        return text
    if parameter.pattern is not None and not re.fullmatch(parameter.pattern, text):
        raise UserError(f"{name}: `{text}` does not match {parameter.pattern}")
    if len(text) > 1000:
        raise UserError(f"{name}: at most 1,000 characters")
    return text


def resolve_params(
    spec: RunbookSpec,
    given: Mapping[str, str],
    *,
    hosts: Sequence[str],
    services: Sequence[str],
) -> dict[str, Any]:
    """Every parameter's value (given, else its default); ``UserError`` listing every problem."""
    problems: list[str] = []
    unknown = sorted(set(given) - {p.name for p in spec.parameters})
    if unknown:
        known = ", ".join(p.name for p in spec.parameters) or "none"
        problems.append(f"unknown parameter {', '.join(unknown)} (this runbook takes: {known})")
    values: dict[str, Any] = {}
    for parameter in spec.parameters:
        raw: str | int | bool | None = given.get(parameter.name, parameter.default)
        if raw is None:
            if parameter.required:
                problems.append(f"{parameter.name} is required ({parameter.type}){_about(parameter)}")
            else:
                values[parameter.name] = None
            continue
        try:
            values[parameter.name] = coerce(parameter, raw, hosts, services)
        except UserError as exc:
            problems.append(str(exc))
    if problems:
        raise UserError("; ".join(problems))
    return values


def _about(parameter: Parameter) -> str:
    return f": {parameter.description}" if parameter.description else ""


def substitute(value: Any, params: Mapping[str, Any]) -> Any:
    """``value`` (args: dicts, lists, strings) with ``{{ name }}`` replaced."""
    return _walk(value, lambda text: _substitute_text(text, params))


def placeholders(value: Any) -> set[str]:
    """Every name inside ``{{ }}`` in ``value``."""
    found: set[str] = set()

    def collect(text: str) -> str:
        found.update(PLACEHOLDER.findall(text))
        return text

    _walk(value, collect)
    return found


def fill_secrets(value: Any, secrets: SecretStore) -> Any:
    """``value`` with ``{{ secret.NAME }}`` replaced by the secret (just before running)."""

    def fill(text: str) -> str:
        return PLACEHOLDER.sub(
            lambda m: secrets.get(m[1][len(SECRET_PREFIX) :]) if m[1].startswith(SECRET_PREFIX) else m[0],
            text,
        )

    return _walk(value, fill)


def _substitute_text(text: str, params: Mapping[str, Any]) -> Any:
    whole = PLACEHOLDER.fullmatch(text.strip())
    if whole is not None and not whole[1].startswith(SECRET_PREFIX) and whole[1] in params:
        return params[whole[1]]

    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name.startswith(SECRET_PREFIX) or name not in params:
            return match[0]
        value = params[name]
        return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    return PLACEHOLDER.sub(one, text)


def _walk(value: Any, on_text: Callable[[str], Any]) -> Any:
    if isinstance(value, str):
        return on_text(value)
    if isinstance(value, list):
        return [_walk(item, on_text) for item in value]
    if isinstance(value, dict):
        return {key: _walk(item, on_text) for key, item in value.items()}
    return value


def sample_value(parameter: Parameter, hosts: Sequence[str], services: Sequence[str]) -> Any:
    """A value of the parameter's type, for checking a runbook without running it."""
    if parameter.default is not None:
        return parameter.default
    samples: dict[str, Any] = {
        "string": "sample",
        "int": parameter.min if parameter.min is not None else 1,
        "bool": True,
        "choice": parameter.choices[0] if parameter.choices else "sample",
        "host": hosts[0] if hosts else "host",
        "service": services[0] if services else "service",
        "url": "https://example.com/",
    }
    return samples[parameter.type]
