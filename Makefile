# The two commands of the README's quickstart. Both are idempotent.
.PHONY: run test lint format bench

PY := .venv/bin/python

run:
	@scripts/setup.sh run
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py collectstatic --noinput -v 0
	@$(PY) manage.py bootstrap_admin
	@$(PY) manage.py up

test:
	@scripts/setup.sh test
	@scripts/test.sh $(ARGS)

lint:
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	@.venv/bin/ruff check --fix . && .venv/bin/ruff format .

bench:
	@scripts/setup.sh test
	@$(PY) bench/engine.py
