"""``/incident diag …`` on the bot side: run an engine, shape a chat reply.

No Slack imports: the handler delivers the :class:`Reply` and the incident
commands record it on the timeline.

* ``diag http`` probes through the *guarded* policy
  (:func:`bot.diagnostics.ssrf.chat_policy`): private, loopback, link-local and
  metadata addresses are refused unless ``[diagnostics] allow_cidrs`` /
  ``allow_hosts`` open them. When every URL is refused nothing was probed and
  the answer is a ``UserError`` (for the asker only).
* ``diag logs NAME`` reads only the access logs the operator configured under
  ``[diagnostics.log_sources]``; a path typed in Slack is never opened.

Each reply has a short text (the verdicts; also the file comment), a Block
Kit section per URL / for the log summary, and the full JSON report as a file
when the blocks would not fit in one message.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.diagnostics.http_probe import HttpDiagnosis, ProbeOptions, probe_many
from bot.diagnostics.ssrf import Resolver, chat_policy, system_resolver
from bot.diagnostics.verdict import report_json, summary, verdict
from bot.errors import UserError
from bot.incidents.card import clip, escape
from bot.incidents.views import MAX_BLOCKS, MAX_MESSAGE_TEXT, MAX_SECTION, FileReply, Reply, section
from bot.logs import analyse_logs_async, summarize

if TYPE_CHECKING:
    from bot.settings import FirebellConfig

LEVEL_EMOJI = {"ok": ":large_green_circle:", "degraded": ":large_yellow_circle:", "down": ":red_circle:"}
REFUSED_HINT = (
    "From Slack only public addresses are probed. An operator can open internal ones "
    "with `allow_cidrs` or `allow_hosts` under `[diagnostics]` in firebell.toml."
)


def plain(text: str) -> str:
    """Undo :func:`escape` (for the timeline, which escapes on display)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _fits(blocks: list[dict[str, Any]]) -> bool:
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    return (
        len(blocks) <= MAX_BLOCKS
        and all(len(t) < MAX_SECTION for t in texts)
        and sum(map(len, texts)) <= MAX_MESSAGE_TEXT
    )


def _reply(text: str, blocks: list[dict[str, Any]], report: Any, filename: str, title: str) -> Reply:
    """The blocks when they fit; else the text with the full JSON report attached."""
    if _fits(blocks):
        return Reply(text=text, blocks=blocks, in_channel=True)
    content = json.dumps(report, ensure_ascii=False, indent=2)
    return Reply(
        text=clip(text, MAX_SECTION),
        file=FileReply(filename=filename, title=title, content=content),
        in_channel=True,
    )


def _refused_text(results: Sequence[HttpDiagnosis]) -> str:
    lines = [f"• {escape(d.url)}: {escape(verdict(d).headline)}" for d in results]
    return "Not probed:\n" + "\n".join(lines) + f"\n{REFUSED_HINT}"


async def run_http(
    config: FirebellConfig,
    ssl_cert_file: str | None,
    urls: Sequence[str],
    count: int = 1,
    *,
    resolver: Resolver = system_resolver,
) -> Reply:
    """Probe ``urls`` (guarded) and answer with a verdict per URL."""
    options = ProbeOptions.for_chat(config.diagnostics, count=count, ca_file=ssl_cert_file)
    results = await probe_many(
        urls, policy=chat_policy(config.diagnostics), options=options, resolver=resolver
    )
    if all(d.refused for d in results):
        raise UserError(_refused_text(results))
    lines: list[str] = []
    blocks: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    for diagnosis in results:
        judged = verdict(diagnosis)
        reports.append(report_json(diagnosis, judged))
        emoji = LEVEL_EMOJI.get(judged.level, ":no_entry_sign:")
        lines.append(f"{emoji} {escape(diagnosis.url)} — *{judged.level}*: {escape(judged.text)}")
        body = escape(summary(diagnosis, judged))
        blocks.append(section(f"{emoji} *{escape(diagnosis.url)}* — *{judged.level}*\n```{body}```"))
    samples = f" ({count} requests each)" if count > 1 else ""
    text = f"HTTP diagnosis{samples}:\n" + "\n".join(lines)
    return _reply(text, blocks, reports, "diag-http.json", "HTTP diagnosis (JSON)")


def _paths(patterns: Sequence[str]) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            found.extend(sorted(glob.glob(pattern)))
        else:
            found.append(pattern)
    return list(dict.fromkeys(found))


async def run_logs(config: FirebellConfig, name: str) -> Reply:
    """Analyse the access logs configured as ``name`` (never a path from chat)."""
    sources = config.diagnostics.log_sources
    if name not in sources:
        if not sources:
            raise UserError(
                "No log sources are configured. An operator can name access logs under "
                '`[diagnostics.log_sources]` in firebell.toml, e.g. `web = ["/var/log/nginx/access.log*"]`.'
            )
        names = ", ".join(f"`{known}`" for known in sorted(sources))
        raise UserError(
            f"`{escape(clip(name, 80))}` is not a configured log source. Configured: {names}.\n"
            "Usage: `/incident diag logs NAME`"
        )
    paths = _paths(sources[name])
    if not paths:
        raise UserError(f"Log source `{name}` has no files right now.")
    report = await analyse_logs_async(paths)
    files = f"{len(paths)} files" if len(paths) > 1 else "1 file"
    text = f"Access log `{name}` ({files}): " + escape(summarize(report))
    blocks = [section(f":mag: *Access log `{name}`* ({files})\n{escape(summarize(report))}")]
    return _reply(text, blocks, report.to_dict(), f"diag-logs-{name}.json", f"Access log {name} (JSON)")
