"""Pytest fixtures that run the real embedded engine as a subprocess on a free port.

The lead's ``tests/conftest.py`` star-imports this module; ``engine`` is one engine per
test session (per xdist worker), shared by every test that needs a Daytona API.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

__all__ = ["EngineServer", "engine", "start_engine"]

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30.0
# Every engine the tests start, in a subprocess or in process, whatever its data
# directory, runs its default sandboxes on one image built once (scripts/test.sh builds
# it; an engine refuses to start without it).
IMAGE_DIR = os.environ.setdefault("SANDBAR_IMAGE_DIR", str(ROOT / "var" / "images"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class EngineServer:
    """A running engine: where it listens, its key and its data directory."""

    data_dir: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    api_key: str = ""

    @property
    def api_url(self) -> str:
        """What the SDK takes as ``api_url``."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def toolbox_url(self) -> str:
        """The ``toolboxProxyUrl`` the engine hands out."""
        return f"http://127.0.0.1:{self.port}/toolbox"

    @property
    def log_path(self) -> Path:
        """The engine's own output, for debugging a failing test."""
        return self.data_dir / "engine.log"

    def client(self, **kwargs: object) -> httpx.Client:
        """An httpx client for the API, with the key."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    @property
    def uid_base(self) -> int:
        """SANDBAR_SANDBOX_UID: each test engine has a range of its own (by its port, which
        no other running engine has), as engines on one machine must (see ids.claim)."""
        return int(self.env.get("SANDBAR_SANDBOX_UID", 1_000_000 + self.port * 100))

    @property
    def uid_count(self) -> int:
        """SANDBAR_SANDBOX_UID_COUNT: sandboxes at once."""
        return int(self.env.get("SANDBAR_SANDBOX_UID_COUNT", 50))

    def uid_env(self) -> dict[str, str]:
        """The engine's uid range as settings."""
        return {
            "SANDBAR_SANDBOX_UID": str(self.uid_base),
            "SANDBAR_SANDBOX_UID_COUNT": str(self.uid_count),
        }

    def start(self) -> None:
        """Start the engine subprocess and wait until it answers."""
        # Telemetry every second (15 s by default) so tests see metrics without waiting.
        fast = {"SANDBAR_ENGINE_TICK_SECONDS": "0.25", "SANDBAR_TELEMETRY_SECONDS": "1"}
        env = {**os.environ, **fast, **self.uid_env(), **self.env}
        env.pop("SANDBAR_ENGINE_PORT", None)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "dashboard.engine",
                    "--host", "127.0.0.1", "--port", str(self.port),
                    "--data-dir", str(self.data_dir),
                ],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        key_file = self.data_dir / "engine" / "api-key"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"engine exited: {self.log_path.read_text()[-2000:]}")
            if key_file.exists() and (key := key_file.read_text().strip()):
                self.api_key = key
                with contextlib.suppress(httpx.TransportError):
                    response = httpx.get(
                        f"{self.api_url}/health",
                        headers={"Authorization": f"Bearer {key}"},
                        timeout=2,
                    )
                    if response.status_code == 200:
                        return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"engine did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the engine (SIGTERM: a clean shutdown) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_engine(data_dir: Path, **env: str) -> EngineServer:
    """Start an engine on a free port with its own data directory."""
    server = EngineServer(data_dir=data_dir, port=_free_port(), env=env)
    server.start()
    return server


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """One real engine for the whole test session."""
    server = start_engine(tmp_path_factory.mktemp("engine"))
    yield server
    server.stop()
