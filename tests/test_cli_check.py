"""``firebell check``: exit 0 when sound, 2 with one clear line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FIREBELL = str(Path(sys.executable).with_name("firebell"))


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "FIREBELL_", "PAGERDUTY_", "OPSGENIE_"))
    }
    return subprocess.run(
        [FIREBELL, "check"], cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_a_sound_configuration(tmp_path: Path) -> None:
    result = run(tmp_path, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s")
    assert result.returncode == 0, result.stderr
    assert "configuration is sound" in result.stdout


def test_problems_are_listed_one_per_line(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        SLACK_BOT_TOKEN="xoxb-1",
        FIREBELL_DATABASE_URL="mysql://db/x",
        PAGERDUTY_API_URL="http://api.pagerduty.com",
        PAGERDUTY_API_TOKEN="t",
        FIREBELL_LOG_LEVEL="loud",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any("SLACK_SIGNING_SECRET" in line for line in lines)
    assert any("unsupported database 'mysql'" in line for line in lines)
    assert any("PAGERDUTY_API_URL must use https://" in line for line in lines)
    assert any("PAGERDUTY_FROM_EMAIL" in line for line in lines)
    assert any("FIREBELL_LOG_LEVEL" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_a_broken_config_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "firebell.toml").write_text("[grouping]\nwindow_minutes = 'ten'\n")
    result = run(tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "grouping.window_minutes" in result.stderr
