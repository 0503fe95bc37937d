"""The ``diag`` step kind's verdicts as data that conditions can read."""

from __future__ import annotations

import ssl
from pathlib import Path

from bot.clock import SystemClock
from bot.runbooks.config import RunbooksConfig
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import StepContext
from bot.runbooks.steps.diag import STEP, DiagArgs
from bot.settings import load_settings
from tests.conftest import write_toml
from tests.logs.logdata import combined, write


async def test_logs_set_spikes_and_5xx_counts(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, combined)
    config = write_toml(tmp_path / "firebell.toml", {"diagnostics.log_sources": {"web": [str(log)]}})
    settings = load_settings({"FIREBELL_CONFIG": str(config)})
    context = StepContext(
        config=RunbooksConfig(),
        secrets=SecretStore({}),
        clock=SystemClock(),
        ssl_context=ssl.create_default_context(),
        timeout=60,
        settings=settings,
    )
    outcome = await STEP.run(DiagArgs(check="logs", source="web"), context)
    assert outcome.ok
    assert outcome.data["spikes"] >= 1 and outcome.data["errors_5xx"] > 0 and outcome.data["requests"] > 0
    assert "5xx spike" in outcome.output
