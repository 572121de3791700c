# The two commands of the README's quickstart. Both are idempotent.
.PHONY: run test lint format bench

PY := .venv/bin/python
# The bench's engines have throwaway data directories: they share the default sandbox
# image kept here, as the tests' do (scripts/test.sh); see README "The default image".
SHARED_IMAGE_DIR := $(CURDIR)/var/images

run:
	@scripts/setup.sh run
	@$(PY) manage.py engine --build-image
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

bench: export SANDBAR_IMAGE_DIR ?= $(SHARED_IMAGE_DIR)
bench:
	@scripts/setup.sh test
	@$(PY) manage.py engine --build-image
	@$(PY) bench/engine.py
