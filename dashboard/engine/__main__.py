"""``python -m dashboard.engine``: the same entry point as ``manage.py engine``."""

from dashboard.engine.server import main

if __name__ == "__main__":
    raise SystemExit(main())
