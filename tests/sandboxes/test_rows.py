from datetime import timedelta

import pytest
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
