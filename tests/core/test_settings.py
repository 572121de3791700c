import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard import env

ROOT = Path(__file__).resolve().parents[2]
READ = re.compile(
    r"""(?:env_\w+|os\.environ\.get|os\.getenv|os\.environ\.setdefault)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]"""
)
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}


def variables_read_by_the_code() -> set[str]:
    names = set()
    for path in (ROOT / "dashboard").rglob("*.py"):
        for match in READ.finditer(path.read_text()):
            names.add(match.group(1) or match.group(2))
    return names - NOT_SETTINGS


def test_the_scan_finds_the_variables_settings_read() -> None:
    assert {
        "DAYTONA_API_URL",
        "DATABASE_URL",
        "REDIS_URL",
        "SANDBAR_DATA_DIR",
    } <= variables_read_by_the_code()


def test_every_environment_variable_is_documented() -> None:
    # The dashboard's in the README's settings table; the engine's in docs/engine.md.
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "engine.md").read_text()
    missing = sorted(name for name in variables_read_by_the_code() if f"`{name}`" not in docs)
    assert missing == [], f"document these in README.md or docs/engine.md: {missing}"


def test_the_dashboards_own_settings_are_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    engine = {
        name
        for name in variables_read_by_the_code()
        if f"`{name}`" in (ROOT / "docs" / "engine.md").read_text()
    }
    dashboard = sorted(
        name
        for path in (ROOT / "dashboard").glob("*.py")
        for name in variables_read_by_the_code()
        if name in path.read_text() and name not in engine
    )
    missing = [name for name in dashboard if f"`{name}`" not in readme]
    assert missing == [], f"document these in README.md: {missing}"


@pytest.mark.parametrize(
    ("helper", "value", "message"),
    [
        (lambda: env.env_bool("X_FLAG", False), "perhaps", "X_FLAG must be true or false"),
        (lambda: env.env_int("X_NUM", 1), "ten", "X_NUM must be a whole number"),
        (lambda: env.env_int("X_NUM", 1, minimum=1), "0", "X_NUM must be at least 1"),
        (lambda: env.env_url("X_URL", "http://a"), "ftp://host", "X_URL must be a URL"),
        (lambda: env.env_url("X_URL", "http://a"), "localhost:8000", "X_URL must be a URL"),
    ],
)
def test_a_bad_value_fails_with_a_message_naming_the_variable(
    monkeypatch, helper, value, message
) -> None:
    monkeypatch.setenv("X_FLAG", value)
    monkeypatch.setenv("X_NUM", value)
    monkeypatch.setenv("X_URL", value)
    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


def test_good_values_are_read_with_their_types(monkeypatch) -> None:
    monkeypatch.setenv("X_FLAG", "Yes")
    monkeypatch.setenv("X_NUM", " 42 ")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    monkeypatch.setenv("X_URL", "https://daytona.example/api/")
    assert env.env_bool("X_FLAG", False) is True
    assert env.env_int("X_NUM", 1) == 42
    assert env.env_list("X_LIST", []) == ["a", "b", "c"]
    assert env.env_url("X_URL", "http://a") == "https://daytona.example/api"
    assert env.env_str("X_UNSET_SURELY", "fallback") == "fallback"


def test_settings_refuse_to_start_with_a_bad_value(tmp_path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "SANDBAR_DATA_DIR": str(tmp_path),
            "SANDBAR_ENGINE_PORT": "99999",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SANDBAR_ENGINE_PORT must be at most 65535" in result.stderr
