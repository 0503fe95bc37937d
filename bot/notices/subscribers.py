"""Subscribers from a CSV file: ``email`` (required), optional ``locale`` and ``components``.

The file is read as a stream and written in batches, so a list of a million
addresses needs no more memory than one of a hundred. An address already in
the segment gets the file's locale and components; one that unsubscribed
stays unsubscribed (a re-imported list must not undo a person's choice). Bad
rows are reported with their line number and skipped; they never stop the
import.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import UserError
from bot.store.database import dialect_insert
from bot.store.tables import Subscriber

SUBSCRIBERS = Subscriber.__table__  # type: ignore[attr-defined]
BATCH = 1000
# Deliberately plain: the mail server is the judge; this catches typos and
# anything that could smuggle a header (CR, LF, commas, angle brackets).
EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
LOCALE = re.compile(r"^[a-z]{2}(?:[-_][A-Za-z]{2})?$")


def valid_email(value: str) -> bool:
    return len(value) <= 320 and EMAIL.match(value) is not None


@dataclass
class ImportReport:
    imported: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    """(line, reason) for rows left out."""


def read_rows(lines: Iterable[str], default_locale: str, report: ImportReport) -> Iterator[dict[str, Any]]:
    """Rows of a subscriber CSV, checked; ``UserError`` when there is no ``email`` column."""
    reader = csv.DictReader(lines)
    fields = [name.strip().lower() for name in reader.fieldnames or []]
    if "email" not in fields:
        found = ", ".join(fields) or "no header row"
        raise UserError(f"the CSV needs a header row with an `email` column (found: {found})")
    reader.fieldnames = fields
    for row in reader:
        line = reader.line_num
        email = (row.get("email") or "").strip().lower()
        if not valid_email(email):
            report.skipped.append((line, f"`{email[:80]}` is not an email address"))
            continue
        locale = (row.get("locale") or "").strip().lower().replace("_", "-") or default_locale
        if not LOCALE.match(locale):
            report.skipped.append((line, f"`{locale[:20]}` is not a locale like en or fr-ca"))
            continue
        components = [c.strip() for c in re.split(r"[;|]", row.get("components") or "") if c.strip()]
        yield {"email": email, "locale": locale, "components": json.dumps(components)}


async def import_csv(
    engine: AsyncEngine, path: Path, segment: str, default_locale: str, now: datetime
) -> ImportReport:
    report = ImportReport()
    insert = dialect_insert(engine)(SUBSCRIBERS)
    statement = insert.on_conflict_do_update(
        index_elements=["segment", "email"],
        set_={
            "locale": insert.excluded.locale,
            "components": insert.excluded.components,
        },
    )
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        batch: list[dict[str, Any]] = []
        for row in read_rows(handle, default_locale, report):
            batch.append({**row, "segment": segment, "source": "import", "created_at": now})
            if len(batch) >= BATCH:
                await _write(engine, statement, batch)
                report.imported += len(batch)
                batch = []
        if batch:
            await _write(engine, statement, batch)
            report.imported += len(batch)
    return report


async def _write(engine: AsyncEngine, statement: Any, rows: list[dict[str, Any]]) -> None:
    # Duplicates within one batch would hit the same row twice in one statement.
    unique = list({row["email"]: row for row in rows}.values())
    async with engine.begin() as connection:
        await connection.execute(statement, unique)
