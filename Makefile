# Two commands on a fresh machine: `make serve` starts the server, `make test` runs every test.
.PHONY: serve test setup lint format bench

setup:
	bash scripts/setup.sh

serve:
	bash scripts/setup.d/20-venv.sh
	bash scripts/dev-serve.sh

test: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/pytest

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: setup
	.venv/bin/python -m bench.run
