"""Serving the dashboard for a benchmark: as `make run` serves it (uvicorn with the
options of `manage.py up`), in its own process, on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A work directory removed when the bench ends, also on Ctrl-C or SIGTERM.

    It holds the throwaway engine's data: with --sandboxes 1000, about 1.7 GB of
    sparse disk images.
    """
    work = Path(tempfile.mkdtemp(prefix=prefix))
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield work
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(work, ignore_errors=True)


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
