"""The deployment files hold together: the compose file's wiring, the image, the systemd
units and the backup script agree with each other and with the code.

Docker is not installed here, so `docker compose config` runs only where it is; the
compose file is read with PyYAML (which uvicorn[standard] installs) and checked for what
`config` would not catch anyway: which service talks to which, on which port.
"""

import configparser
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.core.test_settings import variables_read_by_the_code

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# Read by the containers' tools, not by Sandbar: compose's own, uvicorn's, PostgreSQL's.
NOT_SANDBAR = {"SANDBAR_DOMAIN", "WEB_CONCURRENCY", "POSTGRES_PASSWORD", "SANDBAR_WORKERS"}
SERVER_FLAGS = ["--ws websockets-sansio", "--lifespan on", "--timeout-graceful-shutdown 5"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def env_file(path: Path) -> dict[str, str]:
    pairs = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", path.read_text(), re.MULTILINE)
    return dict(pairs)


def dockerfile_cmd() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^CMD (\[.*\])", text, re.MULTILINE)
    assert match, "the Dockerfile has no exec-form CMD"
    return yaml.safe_load(match.group(1))


def test_the_compose_file_has_sandbar_its_database_cache_and_proxy(compose) -> None:
    assert set(compose["services"]) == {"migrate", "sandbar", "postgres", "redis", "caddy"}
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    assert compose["services"]["redis"]["image"].startswith("redis:")
    assert compose["services"]["caddy"]["image"].startswith("caddy:")


def test_the_proxy_forwards_to_the_port_sandbar_listens_on(compose) -> None:
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    host, port = re.search(r"reverse_proxy\s+([\w.-]+):(\d+)", caddyfile).groups()  # type: ignore[union-attr]
    assert host == "sandbar"
    cmd = dockerfile_cmd()
    assert cmd[cmd.index("--port") + 1] == port
    assert port in compose["services"]["sandbar"]["expose"]
    mount = compose["services"]["caddy"]["volumes"][0]
    assert mount.startswith("./Caddyfile:/etc/caddy/Caddyfile")
    # Sandbar itself is reached only through the proxy.
    assert "ports" not in compose["services"]["sandbar"]
    assert {"80:80", "443:443"} <= set(compose["services"]["caddy"]["ports"])


def test_the_proxy_streams_and_tags_requests() -> None:
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert "flush_interval -1" in caddyfile
    assert "header_up X-Request-ID" in caddyfile
    assert "stream_timeout" not in re.sub(r"#.*", "", caddyfile)  # terminals stay open


def interpolated(value: str, **env: str) -> str:
    """`value` with compose's ${NAME}, ${NAME:-default} and ${NAME:?error} filled in."""
    pattern = r"\$\{(\w+)(?::?[-?]([^}]*))?\}"
    return re.sub(pattern, lambda m: env.get(m.group(1), m.group(2) or ""), value)


def test_sandbar_reaches_postgres_and_redis_by_their_service_names(compose) -> None:
    password = "pw-" + "x" * 20
    for name in ("sandbar", "migrate"):
        environment = compose["services"][name]["environment"]
        database = urlsplit(interpolated(environment["DATABASE_URL"], POSTGRES_PASSWORD=password))
        postgres = {
            key: interpolated(value, POSTGRES_PASSWORD=password)
            for key, value in compose["services"]["postgres"]["environment"].items()
        }
        assert database.scheme == "postgres"
        assert database.hostname == "postgres"
        assert database.port == 5432
        assert database.path == "/" + postgres["POSTGRES_DB"]
        assert database.username == postgres["POSTGRES_USER"]
        assert database.password == postgres["POSTGRES_PASSWORD"] == password
        assert urlsplit(environment["REDIS_URL"]).hostname == "redis"
        assert environment["SANDBAR_BEHIND_PROXY"] == "true"
        assert "localhost" in environment["ALLOWED_HOSTS"].split(",")


def test_every_service_waits_for_what_it_needs_to_be_healthy(compose) -> None:
    services = compose["services"]
    assert services["sandbar"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["caddy"]["depends_on"] == {"sandbar": {"condition": "service_healthy"}}
    for name in ("postgres", "redis", "sandbar"):
        assert services[name]["healthcheck"]["test"], name


def test_health_checks_ask_sandbar_for_healthz(compose) -> None:
    check = " ".join(compose["services"]["sandbar"]["healthcheck"]["test"])
    assert "http://localhost:8000/healthz" in check
    assert "http://localhost:8000/healthz" in (ROOT / "Dockerfile").read_text()


def test_migrations_run_before_the_workers(compose) -> None:
    command = compose["services"]["migrate"]["command"]
    assert command.index("migrate --noinput") < command.index("collectstatic")
    assert compose["services"]["migrate"]["restart"] == "no"
    # One data volume for both: static files and the secret key live there.
    volumes = {name: compose["services"][name]["volumes"] for name in ("migrate", "sandbar")}
    assert volumes["migrate"] == volumes["sandbar"] == ["sandbar-data:/var/lib/sandbar"]


def test_the_image_and_the_unit_serve_as_manage_py_up_does() -> None:
    up = (ROOT / "dashboard/core/management/commands/up.py").read_text()
    cmd = " ".join(dockerfile_cmd())
    unit = service("sandbar.service")["Service"]["ExecStart"]
    for flag in SERVER_FLAGS:
        assert all(part in up for part in shlex.split(flag)), flag
        assert flag in cmd
        assert flag in " ".join(shlex.split(unit))
    assert cmd.startswith("uvicorn dashboard.asgi:application")


def test_only_settings_sandbar_reads_are_set() -> None:
    compose_text = (DEPLOY / "compose.yaml").read_text()
    environment = yaml.safe_load(compose_text)["x-environment"]
    names = set(environment) | set(env_file(DEPLOY / "sandbar.env.example"))
    unknown = sorted(names - variables_read_by_the_code() - NOT_SANDBAR)
    assert unknown == [], f"not Sandbar settings: {unknown}"
    assert set(env_file(DEPLOY / "env.example")) <= NOT_SANDBAR


def service(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def test_the_systemd_units_start_in_order_and_stop_gracefully() -> None:
    sandbar = service("sandbar.service")
    assert "sandbar-migrate.service" in sandbar["Unit"]["Requires"]
    assert "sandbar-migrate.service" in sandbar["Unit"]["After"]
    assert sandbar["Service"]["KillSignal"] == "SIGTERM"
    assert int(sandbar["Service"]["TimeoutStopSec"]) > 5  # past uvicorn's graceful 5 s
    assert int(sandbar["Service"]["LimitNOFILE"]) >= 65536
    assert service("sandbar-engine.service")["Service"]["ExecStart"].endswith("manage.py engine")
    migrate = (DEPLOY / "systemd" / "sandbar-migrate.service").read_text()
    assert "manage.py migrate --noinput" in migrate
    assert service("sandbar-migrate.service")["Service"]["Type"] == "oneshot"
    timer = service("sandbar-backup.timer")
    assert timer["Timer"]["OnCalendar"]
    assert service("sandbar-backup.service")["Service"]["ExecStart"].endswith("deploy/backup.sh")


def compose_cli() -> bool:
    if shutil.which("docker") is None:
        return False
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return version.returncode == 0


@pytest.mark.skipif(not compose_cli(), reason="Docker Compose is not installed here")
def test_docker_compose_accepts_the_file(tmp_path) -> None:
    env_path = DEPLOY / "sandbar.env"
    if not env_path.exists():
        # `config` reads the env_file; the example stands in for a filled-in one.
        pytest.skip("deploy/sandbar.env is not filled in (copy deploy/sandbar.env.example)")
    env = {"POSTGRES_PASSWORD": "x" * 20, "SANDBAR_DOMAIN": "sandbar.example.com"}
    result = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        env={**env, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_backup_script_copies_the_database_and_the_keys_and_keeps_the_last(
    tmp_path,
) -> None:
    data, backups = tmp_path / "data", tmp_path / "backups"
    (data / "static").mkdir(parents=True)
    (data / "secret-key").write_text("s3cret\n")
    (data / "static" / "app.css").write_text("body{}")
    with sqlite3.connect(data / "sandbar.sqlite3") as db:
        db.execute("CREATE TABLE audit (entry TEXT)")
        db.execute("INSERT INTO audit VALUES ('kept')")
    env = {
        "PATH": "/usr/bin:/bin",
        "SANDBAR_BACKUP_DIR": str(backups),
        "SANDBAR_DATA_DIR": str(data),
        "SANDBAR_BACKUP_KEEP": "2",
    }
    for _ in range(3):
        subprocess.run([DEPLOY / "backup.sh"], env=env, check=True, capture_output=True)
    kept = sorted(backups.iterdir())
    assert len(kept) == 2
    copy = sqlite3.connect(kept[-1] / "sandbar.sqlite3")
    assert copy.execute("SELECT entry FROM audit").fetchall() == [("kept",)]
    copy.close()
    with tarfile.open(kept[-1] / "data.tar.gz") as archive:
        names = set(archive.getnames())
    assert "./secret-key" in names
    assert not any("static" in name or "sqlite3" in name for name in names)
    assert oct(kept[-1].stat().st_mode & 0o777) == "0o700"


def test_the_backup_script_refuses_a_database_it_cannot_copy(tmp_path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SANDBAR_BACKUP_DIR": str(tmp_path / "backups"),
        "SANDBAR_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "mysql://db/sandbar",
    }
    result = subprocess.run([DEPLOY / "backup.sh"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "back up the database at DATABASE_URL with its own tools" in result.stderr
