# Two commands on a fresh machine: `make serve` starts the server, `make test` runs every test.
.PHONY: serve test unit setup lint format bench

setup:
	bash scripts/setup.sh

serve:
	bash scripts/setup.d/20-venv.sh
	bash scripts/dev-serve.sh

test: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/pytest

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
