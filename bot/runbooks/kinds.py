"""The registry of step kinds: kind name → the module that implements it.

Modules load on first use, so a firebell that never restarts a Kubernetes
workload never imports that client.
"""

from __future__ import annotations

import importlib

from bot.errors import UserError
from bot.runbooks.step import RunbookStep

KIND_MODULES = {
    "http": "bot.runbooks.steps.http",
    "smoke": "bot.runbooks.steps.smoke",
    "diag": "bot.runbooks.steps.diag",
    "notify": "bot.runbooks.steps.notify",
    "approval": "bot.runbooks.steps.approval",
    "ssh": "bot.runbooks.steps.ssh",
    "systemd": "bot.runbooks.steps.systemd",
    "docker": "bot.runbooks.steps.docker",
    "kubernetes": "bot.runbooks.steps.kubernetes",
    "haproxy": "bot.runbooks.steps.haproxy",
    "cdn": "bot.runbooks.steps.cdn",
    "maintenance": "bot.runbooks.steps.maintenance",
    "db_backup": "bot.runbooks.steps.db_backup",
}


def step_kind(kind: str) -> RunbookStep:
    """The implementation of ``kind``; ``UserError`` naming the known kinds otherwise."""
    module_name = KIND_MODULES.get(kind)
    if module_name is None:
        raise UserError(f"unknown step kind `{kind}` (known: {', '.join(sorted(KIND_MODULES))})")
    step: RunbookStep = importlib.import_module(module_name).STEP
    return step
