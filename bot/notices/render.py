"""Rendering a notice: once per segment × channel × locale, never per recipient.

Templates are Jinja2 files found in this order (the first that exists wins):

1. ``<templates_dir>/<segment>/<channel>.<locale>.<part>.j2``
2. ``<templates_dir>/<segment>/<channel>.<part>.j2``
3. the same two under ``<templates_dir>/<variant>/``
4. the shipped ``bot/notices/templates/<variant>/`` files

``<part>`` is ``subject``, ``text`` or ``html`` (email has all three; other
channels use ``text`` and fall back to the shipped ``short.text.j2``). Fixed
words come from ``labels`` in the recipient's locale. HTML is autoescaped;
text is not (it is never HTML). Each recipient's unsubscribe link replaces
``UNSUBSCRIBE_MARK`` afterwards, a string substitution.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape

from bot.errors import UserError
from bot.notices.config import NoticesConfig, SegmentConfig
from bot.notices.labels import format_time, labels
from bot.notices.model import UNSUBSCRIBE_MARK, NoticeDraft, NoticeStatus, Rendered

SHIPPED = Path(__file__).parent / "templates"
STATUS_COLOURS = {
    NoticeStatus.INVESTIGATING: "#de350b",
    NoticeStatus.IDENTIFIED: "#ff8b00",
    NoticeStatus.MONITORING: "#0065ff",
    NoticeStatus.RESOLVED: "#00875a",
}


class NoticeRenderer:
    def __init__(self, config: NoticesConfig, *, status_url: str | None = None) -> None:
        self._config = config
        self._status_url = status_url
        roots = [Path(config.templates_dir).expanduser()] if config.templates_dir else []
        self._env = Environment(
            loader=FileSystemLoader([*map(str, roots), str(SHIPPED)]),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=False,
            trim_blocks=False,
        )

    def segments_for(self, draft: NoticeDraft) -> dict[str, SegmentConfig]:
        configured = self._config.effective_segments()
        wanted = draft.segments or tuple(configured)
        unknown = [name for name in wanted if name not in configured]
        if unknown:
            raise UserError(f"unknown segment {', '.join(unknown)} (configured: {', '.join(configured)})")
        return {name: configured[name] for name in wanted}

    def channels_for(self, draft: NoticeDraft, segment: SegmentConfig) -> list[str]:
        return [c for c in segment.channels if not draft.channels or c in draft.channels]

    def render_all(self, draft: NoticeDraft) -> list[Rendered]:
        """Every body the notice needs."""
        bodies: list[Rendered] = []
        for name, segment in self.segments_for(draft).items():
            for channel in self.channels_for(draft, segment):
                for locale in segment.locales:
                    bodies.append(self.render(draft, name, segment, channel, locale))
        return bodies

    def render(
        self, draft: NoticeDraft, name: str, segment: SegmentConfig, channel: str, locale: str
    ) -> Rendered:
        context = {
            "title": draft.incident_title or self._config.status_page_title,
            "status": draft.status.value,
            "impact": draft.impact.value,
            "components": list(draft.components),
            "message": draft.message,
            "next_update": format_time(draft.next_update_at, locale),
            "status_url": self._status_url or "",
            "unsubscribe_url": UNSUBSCRIBE_MARK,
            "L": labels(locale),
            "locale": locale,
            "segment": name,
            "colour": STATUS_COLOURS[draft.status],
        }
        kind = "email" if channel == "email" else "short"
        subject = self._part(name, segment, channel, locale, "subject", "email", context)
        text = self._part(name, segment, channel, locale, "text", kind, context)
        html = (
            self._part(name, segment, channel, locale, "html", "email", context)
            if channel == "email"
            else None
        )
        # Email bodies end with a newline, as text files do; short messages do not.
        body = text.strip() + ("\n" if channel == "email" else "")
        return Rendered(name, channel, locale, " ".join(subject.split()), body, html)

    def _part(
        self,
        segment_name: str,
        segment: SegmentConfig,
        channel: str,
        locale: str,
        part: str,
        shipped_kind: str,
        context: Mapping[str, object],
    ) -> str:
        names = list(_candidates(segment_name, segment.variant, channel, locale, part))
        names.append(f"{segment.variant}/{shipped_kind}.{part}.j2")
        for name in names:
            try:
                template = self._env.get_template(name)
            except TemplateNotFound:
                continue
            return template.render(context)
        raise LookupError(f"no template for {segment_name}/{channel}/{locale}/{part}")


def _candidates(segment: str, variant: str, channel: str, locale: str, part: str) -> Iterable[str]:
    for folder in (segment, variant):
        yield f"{folder}/{channel}.{locale}.{part}.j2"
        yield f"{folder}/{channel}.{part}.j2"
