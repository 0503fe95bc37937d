"""Severity: how a source's priority, urgency or label becomes SEV1..SEV4.

This module owns the ``Severity`` scale, the default per-source rules, the
merging of configured overrides into them, and the one normalisation of raw
priority values that both the rules and the lookups go through, so that
"P2", 2 and "2" from a webhook all hit the rule written as ``p2``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

from bot.alerts.event import AlertEvent, Source


class Severity(IntEnum):
    """Incident severity; a lower number is more severe."""

    SEV1 = 1
    SEV2 = 2
    SEV3 = 3
    SEV4 = 4

    @property
    def label(self) -> str:
        return f"SEV{self.value}"


_PRIORITY_DIGITS = re.compile(r"p?(\d+)")
_URGENCY_PREFIX = "urgency:"


def normalise_priority(raw: object) -> str | None:
    """A raw priority or rule key as a lookup key.

    Digits, with or without a leading ``P``, become ``p<n>`` ("P2", 2, "2",
    "p02" all give "p2"); any other value becomes its lowercase stripped text.
    ``None``, booleans and blank strings give ``None``: they carry no priority.
    """
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return f"p{raw}"
    if isinstance(raw, float) and raw.is_integer():
        return f"p{int(raw)}"
    text = str(raw).strip().lower()
    if not text:
        return None
    match = _PRIORITY_DIGITS.fullmatch(text)
    if match:
        return f"p{int(match.group(1))}"
    return text


def _freeze_rules(
    rules: Mapping[str, Mapping[str, int]],
) -> Mapping[str, Mapping[str, int]]:
    """Validated, normalised, read-only copy of ``rules``.

    Checking here rather than at lookup time means a bad configuration fails
    once, at start-up (``firebell check``), with a message naming the rule.
    """
    known_sources = {source.value for source in Source}
    frozen: dict[str, Mapping[str, int]] = {}
    for source, source_rules in rules.items():
        source_key = source.strip().lower()
        if source_key not in known_sources:
            raise ValueError(
                f"unknown alert source {source!r} in severity rules "
                f"(expected one of {', '.join(sorted(known_sources))})"
            )
        normalised: dict[str, int] = dict(frozen.get(source_key, {}))
        for raw_key, value in source_rules.items():
            key = normalise_priority(raw_key)
            if key is None:
                raise ValueError(f"empty key in severity rules for {source_key}")
            normalised[key] = _checked_severity(source_key, raw_key, value)
        frozen[source_key] = MappingProxyType(normalised)
    return MappingProxyType(frozen)


def _checked_severity(source: str, key: str, value: object) -> Severity:
    # bool is an int subclass, and "true -> SEV1" is surely a config mistake.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4:
        raise ValueError(
            f"severity for {source} {key!r} must be a whole number from 1 (SEV1) to 4 (SEV4), got {value!r}"
        )
    return Severity(value)


@dataclass(frozen=True)
class SeverityMapping:
    """Per-source rules: ``rules[source][normalised raw key] -> 1..4``.

    Keys are normalised with ``normalise_priority`` on construction; PagerDuty
    urgencies are keyed ``urgency:<urgency>``. ``default`` applies when no
    rule matches.
    """

    rules: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    default: Severity = Severity.SEV3

    def __post_init__(self) -> None:
        # Frozen dataclass: object.__setattr__ is the sanctioned way to store
        # the normalised copy, which also stops callers mutating shared rules.
        object.__setattr__(self, "rules", _freeze_rules(self.rules))
        object.__setattr__(self, "default", Severity(self.default))

    def merged(self, overrides: Mapping[str, Mapping[str, int]]) -> SeverityMapping:
        """A mapping where ``overrides`` replace the matching rules of this one.

        Rules not mentioned in ``overrides`` are kept. Raises ``ValueError`` for
        an unknown source or a value outside 1..4.
        """
        combined: dict[str, dict[str, int]] = {
            source: dict(source_rules) for source, source_rules in self.rules.items()
        }
        for source, source_rules in _freeze_rules(overrides).items():
            combined.setdefault(source, {}).update(source_rules)
        return SeverityMapping(rules=combined, default=self.default)

    def lookup(self, source: Source, raw: object) -> Severity | None:
        """The severity the rules give ``raw`` from ``source``, if any."""
        key = normalise_priority(raw)
        if key is None:
            return None
        value = self.rules.get(source.value, {}).get(key)
        return None if value is None else Severity(value)


_PRIORITIES = {"p1": 1, "p2": 2, "p3": 3, "p4": 4, "p5": 4}


def default_severity_mapping() -> SeverityMapping:
    """The rules firebell uses unless configuration overrides them."""
    return SeverityMapping(
        rules={
            Source.PAGERDUTY.value: {
                **_PRIORITIES,
                f"{_URGENCY_PREFIX}high": 2,
                f"{_URGENCY_PREFIX}low": 3,
            },
            Source.OPSGENIE.value: dict(_PRIORITIES),
            Source.ALERTMANAGER.value: {
                "critical": 1,
                "page": 1,
                "error": 2,
                "high": 2,
                "major": 2,
                "warning": 3,
                "minor": 3,
                "info": 4,
                "low": 4,
                "none": 4,
            },
        }
    )


def map_severity(event: AlertEvent, mapping: SeverityMapping) -> Severity:
    """The severity of ``event``: its priority, else (PagerDuty) its urgency, else the default.

    A priority the rules do not know (a custom PagerDuty priority name, say)
    falls through to the urgency rather than straight to the default, because
    the urgency still says something about how bad it is.
    """
    by_priority = mapping.lookup(event.source, event.priority)
    if by_priority is not None:
        return by_priority
    if event.source is Source.PAGERDUTY and event.urgency:
        by_urgency = mapping.lookup(event.source, f"{_URGENCY_PREFIX}{event.urgency.strip().lower()}")
        if by_urgency is not None:
            return by_urgency
    return mapping.default
