"""Serving the dashboard for a benchmark: as `make run` serves it (uvicorn with the
options of `manage.py up`), in its own process, on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_dashboard(
    web: Path, engine, port: int, app: str = "dashboard.asgi:application"
) -> subprocess.Popen[bytes]:
    """uvicorn serving `app` (Sandbar's, or bench/pages_app.py's) with `manage.py up`'s
    options, only the log level differs; its data in `web`, Daytona at `engine`."""
    env = {
        **os.environ,
        "SANDBAR_DATA_DIR": str(web),
        "DAYTONA_API_URL": engine.api_url,
        "DAYTONA_API_KEY": engine.api_key,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
         "--ws", "websockets-sansio", "--lifespan", "on", "--no-server-header",
         "--timeout-graceful-shutdown", "5", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the dashboard did not start")
