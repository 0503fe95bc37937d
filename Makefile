# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test deps lint bench

deps:
	./.ci/install-deps

run:
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	uv run firebell serve

test: deps
	uv sync --frozen
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy bot handlers
	uv run pytest

lint:
	uv run ruff check .
	uv run mypy bot handlers

bench:
	uv run python benchmarks/ingest.py
