"""Words the notice templates need in each shipped locale (English, French)."""

from __future__ import annotations

from datetime import datetime

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "investigating": "Investigating",
        "identified": "Identified",
        "monitoring": "Monitoring",
        "resolved": "Resolved",
        "none": "No impact",
        "minor": "Minor impact",
        "major": "Major impact",
        "critical": "Critical impact",
        "affected": "Affected",
        "next_update": "Next update",
        "status_page": "Status page",
        "unsubscribe": "Unsubscribe",
        "why": "You get this because you subscribed to status updates.",
    },
    "fr": {
        "investigating": "Analyse en cours",
        "identified": "Cause identifiée",
        "monitoring": "Sous surveillance",
        "resolved": "Résolu",
        "none": "Aucun impact",
        "minor": "Impact mineur",
        "major": "Impact majeur",
        "critical": "Impact critique",
        "affected": "Services concernés",
        "next_update": "Prochaine mise à jour",
        "status_page": "Page d'état",
        "unsubscribe": "Se désabonner",
        "why": "Vous recevez ce message car vous êtes abonné(e) aux informations de service.",
    },
}
_MONTHS_FR = [
    "janv.",
    "févr.",
    "mars",
    "avr.",
    "mai",
    "juin",
    "juil.",
    "août",
    "sept.",
    "oct.",
    "nov.",
    "déc.",
]


def labels(locale: str) -> dict[str, str]:
    return LABELS.get(locale, LABELS["en"])


def format_time(value: datetime | None, locale: str) -> str:
    """A time in words for the locale (UTC, as incident times are)."""
    if value is None:
        return ""
    if locale == "fr":
        return f"{value.day} {_MONTHS_FR[value.month - 1]} {value:%Y à %H:%M} UTC"
    return f"{value:%b} {value.day}, {value:%Y %H:%M} UTC"
