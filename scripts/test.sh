#!/usr/bin/env bash
# The whole suite: lint, Django's checks, migrations in step with models, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export SANDBAR_DATA_DIR="${SANDBAR_TEST_DATA_DIR:-$PWD/var/test}"
# Every engine the tests start runs default sandboxes on this one image.
export SANDBAR_IMAGE_DIR="${SANDBAR_IMAGE_DIR:-$PWD/var/images}"
mkdir -p "$SANDBAR_DATA_DIR"
PY=.venv/bin/python
say() { printf '\033[1;36m==>\033[0m %s\n' "$*"; }
say "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
say "django checks"
$PY manage.py check --fail-level WARNING
$PY manage.py makemigrations --check --dry-run >/dev/null || { echo "models changed without a migration: run manage.py makemigrations" >&2; exit 1; }
say "default sandbox image"
$PY -m dashboard.engine --build-image
say "pytest"
exec .venv/bin/pytest "$@"
