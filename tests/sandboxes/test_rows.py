from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from dashboard import daytona
from dashboard.sandboxes.rows import ago, sandbox_row
from dashboard.sandboxes.views import Row


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (3, "now"),
        (42, "42 seconds ago"),
        (60, "a minute ago"),
        (150, "2 minutes ago"),
        (3600, "an hour ago"),
        (86400 * 3, "3 days ago"),
        (86400 * 400, "a year ago"),
    ],
)
def test_relative_times_read_as_people_say_them(seconds: int, said: str) -> None:
    now = timezone.now()
    assert ago(now - timedelta(seconds=seconds), now) == said


def test_a_row_escapes_everything_daytona_sends(db) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    sandbox = daytona.Sandbox.from_api(
        {
            "id": "abc",
            "name": hostile,
            "state": "error",
            "errorReason": hostile,
            "snapshot": hostile,
            "labels": {hostile: hostile, "sandbar.owner": hostile},
        }
    )
    html = sandbox_row(Row(sandbox, can_act=True, verbs=("delete",)))
    assert "<img" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def _sandbox(**fields) -> daytona.Sandbox:
    return daytona.Sandbox.from_api({"id": "sb-1", "name": "web", "state": "started", **fields})


def test_a_row_built_again_shows_every_change_it_is_built_from(db) -> None:
    # Rows are kept once rendered (in Django's cache): a change to anything a
    # row shows must make a new one, never serve the old.
    first = sandbox_row(Row(_sandbox(), can_act=True, verbs=("stop",)))
    assert sandbox_row(Row(_sandbox(), can_act=True, verbs=("stop",))) == first
    changes = [
        Row(_sandbox(state="stopped"), can_act=True, verbs=("start",)),
        Row(_sandbox(), can_act=False, verbs=("stop",)),
        Row(_sandbox(name="api"), can_act=True, verbs=("stop",)),
        Row(_sandbox(labels={"team": "web"}), can_act=True, verbs=("stop",)),
        Row(_sandbox(cpu=4), can_act=True, verbs=("stop",)),
        Row(_sandbox(state="error", errorReason="disk full"), can_act=True, verbs=("delete",)),
        Row(_sandbox(desiredState="stopped"), can_act=True, verbs=("stop",)),
    ]
    built = [sandbox_row(row) for row in changes]
    assert first not in built and len(set(built)) == len(built)
    assert "disk full" in built[5] and "team=web" in built[3] and "disabled" in built[1]


def test_the_time_cells_are_current_even_for_a_row_kept_from_before(db) -> None:
    created = timezone.now() - timedelta(minutes=5)
    row = Row(_sandbox(createdAt=created.isoformat()), can_act=True, verbs=("stop",))
    assert "5 minutes ago" in sandbox_row(row, now=created + timedelta(minutes=5))
    assert "2 hours ago" in sandbox_row(row, now=created + timedelta(hours=2))


def test_a_row_is_rendered_once_then_served_from_the_cache(db, monkeypatch) -> None:
    from dashboard.sandboxes import rows

    rendered = []
    render = rows._render
    monkeypatch.setattr(rows, "_render", lambda row: rendered.append(row) or render(row))
    row = Row(_sandbox(name="kept-once"), can_act=True, verbs=("stop",))
    first = sandbox_row(row)
    assert sandbox_row(Row(_sandbox(name="kept-once"), can_act=True, verbs=("stop",))) == first
    assert len(rendered) == 1
    sandbox_row(Row(_sandbox(name="kept-once", cpu=3), can_act=True, verbs=("stop",)))
    assert len(rendered) == 2


def test_a_row_shows_the_same_badge_as_every_other_page(db) -> None:
    from dashboard.core.templatetags.sandbar import state_badge

    badge = render_to_string("_state_badge.html", state_badge("build_failed", "no space"))
    html = sandbox_row(Row(_sandbox(state="build_failed", errorReason="no space"), True, ()))
    assert badge.strip() in html


def test_a_row_carries_its_times_for_the_page_to_tick(db) -> None:
    created = timezone.now() - timedelta(minutes=3)
    row = Row(_sandbox(createdAt=created.isoformat()), can_act=True, verbs=())
    html = sandbox_row(row, now=created + timedelta(minutes=3))
    assert f'<time data-relative datetime="{created.isoformat()}"' in html
    assert ">3 minutes ago</time>" in html and "<!--ago:" not in html


def test_action_buttons_carry_no_server_token_but_ask_the_page_for_one(db) -> None:
    # The token that makes a double click act once comes from static/js/app.js
    # (data-once), so a kept row is never a spent token.
    html = sandbox_row(Row(_sandbox(), can_act=True, verbs=("stop", "delete")))
    assert html.count("data-once") == 2 and "once&quot;" not in html and '"once"' not in html


def test_a_list_kept_whole_still_shows_a_change_to_one_of_its_rows(db) -> None:
    from dashboard.sandboxes.rows import sandbox_rows

    def listed(second_state: str) -> str:
        second = _sandbox(id="sb-2", name="second", state=second_state)
        return sandbox_rows([Row(_sandbox(), True, ("stop",)), Row(second, True, ())])

    assert listed("started") == listed("started")
    changed = listed("stopped")
    assert 'id="sb-sb-2" data-sandbox-id="sb-2" data-state="stopped"' in changed
    assert 'id="sb-sb-1" data-sandbox-id="sb-1" data-state="started"' in changed
