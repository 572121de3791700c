"""Throwaway PostgreSQL and Redis on loopback, and Sandbar workers sharing them.

Each worker is its own uvicorn process on its own port (as two machines behind one
proxy, or uvicorn's worker processes, would be), so a test says which one a request or
a WebSocket lands on. They share PostgreSQL (DATABASE_URL), Redis (REDIS_URL: the
channel layer and the cache) and the session's embedded engine.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from tests.engine_server import ROOT, EngineServer, _free_port

OWNER = "mel"
STARTUP_SECONDS = 60.0
# Short leases, so a killed worker's job is taken over within seconds here.
LEASE_SECONDS = "6"


def _pg_bin() -> Path | None:
    """PostgreSQL's server programs: Debian keeps them per version, off PATH."""
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version)
    return Path(versions[-1]).parent if versions else None


def _version(path: str) -> int:
    return int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit() else 0


NOBODY = 65534


def _as_postgres_user() -> dict[str, object]:
    """PostgreSQL refuses to run as root: tests run as root here start it as `nobody`.

    The uid is dropped by subprocess itself (no runuser or su in between), so the
    process the fixture stops is the server, and none is left behind."""
    if os.geteuid() != 0:
        return {}
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def _wait(check, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL cluster of its own in a temporary directory, on a free loopback port."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup.sh test installs it)")
    drop = _as_postgres_user()
    # Not under pytest's temporary directory: its parents are root's alone, and the
    # unprivileged server must reach its data directory.
    home = Path(tempfile.mkdtemp(prefix="sandbar-pg-"))
    data = home / "data"
    log = home / "postgres.log"
    if drop:
        os.chown(home, NOBODY, NOBODY)
    server = None
    try:
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "sandbar",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, cwd=home, **drop,
        )  # fmt: skip
        port = _free_port()
        with open(log, "ab") as out:
            server = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                 "-k", str(home), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "max_connections=100"],
                stdout=out, stderr=subprocess.STDOUT, cwd=home, **drop,
            )  # fmt: skip
        admin = f"postgresql://sandbar@127.0.0.1:{port}/postgres"

        def answers() -> bool:
            with psycopg.connect(admin, connect_timeout=2):
                return True

        _wait(answers, "postgres", server, log)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE sandbar")
        yield f"postgres://sandbar@127.0.0.1:{port}/sandbar"
    finally:
        _stop(server, signal.SIGINT)  # "fast" shutdown
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis of its own, nothing saved to disk, on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/setup.sh test installs it)")
    home = Path(tempfile.mkdtemp(prefix="sandbar-redis-"))
    log = home / "redis.log"
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with open(log, "ab") as out:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(home)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait(lambda: redis.Redis.from_url(url).ping(), "redis-server", server, log)
        yield url
    finally:
        _stop(server)
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Site:
    """What every worker is configured with, and the person the tests sign in as."""

    env: dict[str, str]
    database_url: str
    redis_url: str
    engine: EngineServer
    cookie: str = ""
    workers: list[Worker] = field(default_factory=list)

    def manage(self, *args: str) -> str:
        """`manage.py` with the workers' settings; its output."""
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed: {done.stderr[-2000:]}")
        return done.stdout

    def worker(self, name: str) -> Worker:
        """Start one more worker (uvicorn, `manage.py up`'s options) and wait for it."""
        # A log of its own per start: the tests count lines in it.
        log = Path(self.env["SANDBAR_DATA_DIR"]) / f"{name}-{uuid.uuid4().hex[:8]}.log"
        worker = Worker(name, _free_port(), log)
        worker.start(self.env)
        self.workers.append(worker)
        return worker

    def audit(self) -> list[tuple[int, str, str]]:
        """Every audit entry in PostgreSQL, read straight from the table: (seq, action, target)."""
        with psycopg.connect(self.database_url) as connection:
            rows = connection.execute(
                "SELECT seq, action, target_id FROM audit_auditentry ORDER BY seq"
            ).fetchall()
        return [(int(seq), str(action), str(target)) for seq, action, target in rows]


@dataclass
class Worker:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str]) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "dashboard.asgi:application",
                 "--host", "127.0.0.1", "--port", str(self.port), "--ws", "websockets-sansio",
                 "--lifespan", "on", "--no-server-header", "--timeout-graceful-shutdown", "5",
                 "--log-level", "warning"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

        def healthy() -> bool:
            return httpx.get(f"{self.http}/healthz", timeout=2).status_code == 200

        _wait(healthy, f"worker {self.name}", self.process, self.log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to its sockets, as a crash or the OOM killer."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        _stop(self.process)


@pytest.fixture(scope="session")
def site_settings(
    postgres_url: str, redis_url: str, engine: EngineServer, tmp_path_factory
) -> Site:
    """Migrated PostgreSQL, and a member signed in (a session row every worker reads)."""
    data = tmp_path_factory.mktemp("multiworker")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "SANDBAR_DATA_DIR": str(data),
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "DAYTONA_API_URL": engine.api_url,
        "DAYTONA_API_KEY": engine.api_key,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SANDBAR_LEASE_SECONDS": LEASE_SECONDS,
        # The live poll's and the leases' debug lines are what test_watcher counts.
        "LOG_LEVEL": "DEBUG",
        "SANDBAR_USAGE_SAMPLE_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
    }
    site = Site(env, postgres_url, redis_url, engine)
    site.manage("migrate", "--noinput", "-v", "0")
    site.manage("collectstatic", "--noinput", "-v", "0")  # as `make run` does
    site.cookie = site.manage(
        "shell",
        "-c",
        "from django.test import Client\n"
        "from dashboard.accounts.models import Role, User\n"
        f"user = User.objects.create_user('{OWNER}', password='x' * 20, role=Role.MEMBER)\n"
        "browser = Client()\n"
        "browser.force_login(user)\n"
        "print(browser.cookies['sessionid'].value)\n",
    ).split()[-1]  # after the shell's own "N objects imported" line
    return site


@pytest.fixture
def site(site_settings: Site) -> Iterator[Site]:
    """The shared settings, Redis emptied (no lease or count from an earlier test), and
    the test's workers stopped after it."""
    redis.Redis.from_url(site_settings.redis_url).flushall()
    site_settings.workers = []
    yield site_settings
    for worker in site_settings.workers:
        worker.stop()


@pytest.fixture
def shared_cache(redis_url: str, settings) -> str:
    """Django's cache on this run's Redis, emptied."""
    redis.Redis.from_url(redis_url).flushall()
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    return redis_url
