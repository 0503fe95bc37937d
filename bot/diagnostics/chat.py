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
* ``diag timeouts``, ``diag resources TARGET`` and ``diag monitors [CHECK]``
  run the engines of :mod:`bot.diagnostics.infra_commands` with the operator's
  configuration only (``[diagnostics]`` files and Prometheus URL, the monitor
  API keys from the environment); Slack supplies at most a label or a name.

Each reply has a short text (the verdicts; also the file comment), a Block
Kit section per URL / for the log summary, and the full JSON report as a file
when the blocks would not fit in one message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.diagnostics import infra_commands
from bot.diagnostics.finding_model import Finding
from bot.diagnostics.http_probe import HttpDiagnosis, ProbeOptions, probe_many
from bot.diagnostics.ssrf import Resolver, chat_policy, system_resolver
from bot.diagnostics.verdict import report_json, summary, verdict
from bot.errors import UserError
from bot.incidents.card import clip, escape
from bot.incidents.views import MAX_BLOCKS, MAX_MESSAGE_TEXT, MAX_SECTION, FileReply, Reply, section

if TYPE_CHECKING:
    from bot.logs.report import LogReport
    from bot.settings import FirebellConfig, Settings

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


async def analyse_log_source(config: FirebellConfig, name: str) -> tuple[LogReport, int]:
    """The analysis of the access logs configured as ``name`` (never a path
    from chat), and how many files it read."""
    # The analyser (numpy) and SSH load only when someone asks for logs.
    from bot.logs import analyse_logs_async
    from bot.logs.ssh import materialise_sources

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
    async with materialise_sources(sources[name], config.diagnostics) as paths:
        if not paths:
            raise UserError(f"Log source `{name}` has no files right now.")
        return await analyse_logs_async(paths), len(paths)


async def run_logs(config: FirebellConfig, name: str) -> Reply:
    """Analyse the access logs configured as ``name`` and answer with a summary and a chart."""
    from bot.logs import summarize
    from bot.logs.chart import status_chart_png

    report, count = await analyse_log_source(config, name)
    files = f"{count} files" if count > 1 else "1 file"
    text = f"Access log `{name}` ({files}): " + escape(summarize(report))
    blocks = [section(f":mag: *Access log `{name}`* ({files})\n{escape(summarize(report))}")]
    reply = _reply(text, blocks, report.to_dict(), f"diag-logs-{name}.json", f"Access log {name} (JSON)")
    chart = await asyncio.to_thread(status_chart_png, report, f"{name}: requests per minute by status")
    return replace(reply, attachments=(FileReply(f"diag-logs-{name}.png", f"Access log {name}", chart),))


SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":information_source:",
}


def _finding_line(finding: Finding) -> str:
    emoji = SEVERITY_EMOJI.get(finding.severity.value, ":grey_question:")
    where = f"`{escape(str(finding.where))}` " if finding.where is not None else ""
    return f"{emoji} {where}*{escape(finding.subject)}*: {escape(finding.message)}"


def _findings_reply(
    title: str, summary_text: str, findings: Sequence[Finding], report: Any, filename: str
) -> Reply:
    """``title`` and the engine's plain summary as text; a header plus one section per finding."""
    head, _, _ = summary_text.partition("\n")
    text = f"{title}:\n" + escape(summary_text)
    blocks = [section(f":mag: *{title}*\n{escape(head)}")]
    blocks.extend(section(_finding_line(finding)) for finding in findings)
    return _reply(text, blocks, report, filename, f"{title} (JSON)")


async def run_timeouts(settings: Settings) -> Reply:
    """Compare the configured nginx / HAProxy timeouts (never a file named in chat)."""
    config = settings.config.diagnostics
    if not config.nginx_config and not config.haproxy_config:
        raise UserError(
            "No proxy configuration is configured. An operator can set `nginx_config` and/or "
            "`haproxy_config` (and `app_timeout`) under `[diagnostics]` in firebell.toml."
        )
    report = await asyncio.to_thread(infra_commands.run_timeouts, settings)
    return _findings_reply(
        "Timeouts", report.summary(), report.findings, report.to_dict(), "diag-timeouts.json"
    )


async def run_resources(settings: Settings, target: str) -> Reply:
    """CPU, memory, disk and descriptors of ``target`` from the configured Prometheus."""
    if not settings.config.diagnostics.prometheus_url:
        raise UserError(
            "No Prometheus is configured. An operator can set `prometheus_url` under "
            "`[diagnostics]` in firebell.toml."
        )
    report = await infra_commands.run_resources(settings, target)
    head, _, rest = report.summary().partition("\n")
    text = f"Resources of {escape(head)}:\n" + escape(rest)
    blocks = [section(f":bar_chart: *Resources of {escape(head)}*\n```{escape(rest)}```")]
    return _reply(text, blocks, report.to_dict(), "diag-resources.json", "Resources (JSON)")


async def run_monitors(settings: Settings, check: str | None = None) -> Reply:
    """Uptime checks from every provider whose key the operator set."""
    if not (settings.uptimerobot_api_key or settings.pingdom_api_token or settings.statuscake_api_token):
        raise UserError(
            "No uptime monitor is configured. An operator can set `UPTIMEROBOT_API_KEY`, "
            "`PINGDOM_API_TOKEN` or `STATUSCAKE_API_TOKEN` in firebell's environment."
        )
    report = await infra_commands.run_monitors(settings, match=check)
    title = f"Monitors matching `{escape(check)}`" if check else "Monitors"
    return _findings_reply(title, report.summary(), report.findings, report.to_dict(), "diag-monitors.json")
