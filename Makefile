# Two commands on a fresh machine: `make serve` starts the server, `make test` runs every test.
.PHONY: serve test matrix unit setup lint format bench

setup:
	bash scripts/setup.sh

serve:
	bash scripts/setup.d/20-venv.sh
	bash scripts/dev-serve.sh

# Lint, the interpreter matrix, then the full suite on .venv's Python (3.11).
test: setup lint matrix
	.venv/bin/pytest

# tests/unit and tests/integration on the other supported Pythons (3.10, 3.12, 3.13) side by side.
matrix: setup
	bash scripts/test-matrix.sh

# The fast tests (no server started; Redis on ZOU_EVENTS_TEST_REDIS_URL, as for every test).
unit:
	.venv/bin/pytest -q -m "not slow" tests/unit

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: setup
	.venv/bin/python -m bench.run
