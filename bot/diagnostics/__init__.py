"""Diagnostics: the engines behind ``firebell diag …`` and ``/incident diag …``.

Each diagnostic returns typed values and keeps its rendering pure, so the
command line and Slack show the same findings. One module per job; for the
HTTP probe: :mod:`~bot.diagnostics.http_probe` (the engine),
:mod:`~bot.diagnostics.ssrf` (the address guard every outgoing probe goes
through), :mod:`~bot.diagnostics.headers` and :mod:`~bot.diagnostics.verdict`
(pure reading and rendering). :mod:`~bot.diagnostics.stats` holds general
statistics helpers (percentiles) for any diagnostic.
"""
