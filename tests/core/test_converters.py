"""The URL converters: registered in one place, and what an id in our URLs may be."""

import ast
import re
from pathlib import Path

import pytest
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from dashboard.core.converters import DAYTONA_ID
from dashboard.routing import websocket_urlpatterns

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def _registrations() -> list[str]:
    found = []
    for path in DASHBOARD.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name == "register_converter":
                    found.append(str(path.relative_to(DASHBOARD)))
    return found


def test_converters_are_registered_by_the_root_urlconf_and_nowhere_else():
    assert set(_registrations()) == {"urls.py"}


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("sandbox", "/sandboxes/my-box.v2_1/"),
        ("terminal", "/sandboxes/my-box.v2_1/terminal/"),
        ("snapshot", "/snapshots/a1b2c3/"),
        ("volume_delete", "/volumes/data.1/delete/"),
    ],
)
def test_an_id_or_name_of_letters_digits_dots_dashes_and_underscores_resolves(name, url):
    assert resolve(url).url_name == name


@pytest.mark.parametrize("bad", ["-leading-dash", ".hidden", "a" * 256, "sp ace", "a%2Fb"])
def test_an_id_that_could_break_a_url_matches_no_route(bad):
    with pytest.raises(NoReverseMatch):
        reverse("sandbox", args=[bad])
    with pytest.raises(Resolver404):
        resolve(f"/sandboxes/{bad}/")


def test_only_the_five_sandbox_verbs_are_action_urls():
    assert resolve("/sandboxes/box/archive/").kwargs == {"sandbox_id": "box", "verb": "archive"}
    with pytest.raises(Resolver404):
        resolve("/sandboxes/box/reboot/")


def test_the_terminal_sockets_take_sandbox_ids_by_the_same_pattern():
    patterns = [p.pattern.regex.pattern for p in websocket_urlpatterns]
    terminal = [p for p in patterns if "terminal" in p or "logs" in p]
    assert len(terminal) == 2
    assert all(f"(?P<sandbox_id>{DAYTONA_ID})" in p for p in terminal)
    assert re.fullmatch(DAYTONA_ID, "box-1.a_b")
    assert not re.fullmatch(DAYTONA_ID, "../etc")
