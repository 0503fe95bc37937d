"""Finding and reading runbook files: the shipped ``runbooks/`` and configured paths.

Each problem is reported with its file, step and field, so ``firebell runbook
validate`` and ``firebell check`` can point at the exact line to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.runbooks.config import RunbooksConfig
from bot.runbooks.model import RunbookSpec
from bot.runbooks.plan import Problem, check_runbook

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "runbooks"
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class FileProblem:
    path: Path
    problem: Problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class RunbookLibrary:
    runbooks: dict[str, RunbookSpec] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    problems: list[FileProblem] = field(default_factory=list)

    def get(self, name: str) -> RunbookSpec | None:
        return self.runbooks.get(name)

    def for_service(self, service: str | None) -> list[RunbookSpec]:
        """Runbooks that apply to ``service`` (those naming no service apply to all)."""
        return [
            spec
            for spec in sorted(self.runbooks.values(), key=lambda s: s.name)
            if not spec.services or (service is not None and service in spec.services)
        ]


def runbook_files(config: RunbooksConfig) -> list[Path]:
    """Every runbook file firebell loads: shipped first, then configured paths in order."""
    roots = ([SHIPPED_DIR] if config.include_shipped else []) + [Path(p).expanduser() for p in config.paths]
    return _files(roots)


def _files(roots: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found.extend(sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        else:
            found.append(root)
    return list(dict.fromkeys(found))


def read_runbook(path: Path) -> tuple[RunbookSpec | None, list[Problem]]:
    """The runbook in ``path``, or the problems that keep it from loading."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, [Problem("", f"cannot read: {exc.strerror or exc}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        return None, [Problem(where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")]
    if not isinstance(data, dict):
        return None, [Problem("", "a runbook is a mapping with name, description and steps")]
    try:
        return RunbookSpec.model_validate(data), []
    except ValidationError as exc:
        return None, [_validation_problem(data, error) for error in exc.errors()]


def _validation_problem(data: dict[str, object], error: object) -> Problem:
    assert isinstance(error, dict)
    location = list(error["loc"])
    where: list[str] = []
    # steps.2.args → "step <id>: args" reads better than an index.
    if len(location) >= 2 and location[0] in ("steps", "rollback") and isinstance(location[1], int):
        steps = data.get(str(location[0]))
        step_id = None
        if isinstance(steps, list) and location[1] < len(steps) and isinstance(steps[location[1]], dict):
            step_id = steps[location[1]].get("id")
        where.append(f"step {step_id}" if step_id else f"{location[0]}[{location[1]}]")
        location = location[2:]
    if location:
        where.append(".".join(str(part) for part in location))
    return Problem(": ".join(where), str(error["msg"]))


def validate_files(
    paths: Sequence[Path], config: RunbooksConfig, *, services: Sequence[str]
) -> tuple[RunbookLibrary, list[FileProblem]]:
    """Read and check ``paths``; the runbooks that are sound, and every problem."""
    library = RunbookLibrary()
    problems: list[FileProblem] = []
    hosts = sorted(config.hosts)
    for path in paths:
        spec, found = read_runbook(path)
        if spec is not None:
            found = check_runbook(spec, hosts=hosts, services=services)
            role = spec.approval.role
            if role is not None and role not in config.approvers:
                found.append(
                    Problem("approval.role", f"`{role}` is not configured under [runbooks.approvers]")
                )
            if spec.name in library.paths:
                found.append(Problem("name", f"`{spec.name}` is also defined in {library.paths[spec.name]}"))
        problems.extend(FileProblem(path, problem) for problem in found)
        if spec is not None and not found:
            library.runbooks[spec.name] = spec
            library.paths[spec.name] = path
    library.problems = problems
    return library, problems


def load_library(config: RunbooksConfig, *, services: Sequence[str]) -> RunbookLibrary:
    """Every runbook firebell would load; the ones with problems are left out (and listed)."""
    library, _ = validate_files(runbook_files(config), config, services=services)
    return library
