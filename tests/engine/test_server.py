"""The server process: the API key on every route, the command line, the settings."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.engine_server import ROOT, EngineServer


def test_it_refuses_a_request_without_the_key(engine: EngineServer) -> None:
    response = httpx.get(f"{engine.api_url}/sandbox")
    assert response.status_code == 401
    body = response.json()
    assert (body["statusCode"], body["error"]) == (401, "Unauthorized")
    assert body["message"]


@pytest.mark.parametrize(
    "header", ["Bearer wrong", "Bearer", "Basic abc", "bearer {key}", "Bearer {key}x"]
)
def test_it_refuses_a_wrong_key_on_api_and_toolbox(engine: EngineServer, header: str) -> None:
    headers = {"Authorization": header.format(key=engine.api_key)}
    for url in (f"{engine.api_url}/sandbox", f"{engine.toolbox_url}/any/files"):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["statusCode"] == 401


def test_unknown_routes_are_json_404s(api: httpx.Client) -> None:
    response = api.get("/no-such-route")
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404
    assert api.post("/sandbox/x/teleport").json()["statusCode"] == 404


def test_the_key_file_and_the_engine_directory_are_private(engine: EngineServer) -> None:
    mode = (engine.data_dir / "engine" / "api-key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE((engine.data_dir / "engine").stat().st_mode) == 0o700


def engine_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboard.engine", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_print_key_and_url(engine: EngineServer) -> None:
    result = engine_cli("--data-dir", str(engine.data_dir), "--print-key", "--port", "8123")
    assert result.stdout.strip() == engine.api_key
    result = engine_cli("--print-url", "--port", "8123", "--host", "127.0.0.2")
    assert result.stdout.strip() == "http://127.0.0.2:8123/api"


def test_manage_py_engine_prints_the_same(engine: EngineServer) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "engine", "--data-dir", str(engine.data_dir), "--print-key"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == engine.api_key


def test_the_url_follows_the_environment(tmp_path: Path) -> None:
    result = engine_cli("--print-url", env={"SANDBAR_ENGINE_PORT": "9001"})
    assert result.stdout.strip() == "http://127.0.0.1:9001/api"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SANDBAR_ENGINE_PORT", "eighty"),
        ("SANDBAR_ENGINE_PORT", "70000"),
        ("SANDBAR_SANDBOX_UID", "0"),
        ("SANDBAR_SANDBOX_MEMORY", "-1"),
        ("SANDBAR_ENGINE_TICK_SECONDS", "nan"),
    ],
)
def test_a_bad_setting_fails_with_a_clear_message(name: str, value: str) -> None:
    result = engine_cli("--print-url", env={name: value})
    assert result.returncode == 2
    assert name in result.stderr


def test_a_second_engine_on_the_same_data_dir_refuses_to_start(engine: EngineServer) -> None:
    result = engine_cli("--data-dir", str(engine.data_dir), "--port", "0")
    assert result.returncode != 0
    assert "another engine" in result.stderr
