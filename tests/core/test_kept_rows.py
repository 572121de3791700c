"""dashboard/core/kept.py: a list row drawn once is served again only for the same
data, templates, time zone and language, with its times' words as of each load."""

import zoneinfo
from datetime import UTC, datetime

import pytest
from django.test.signals import template_rendered
from django.utils import timezone

from dashboard import daytona
from dashboard.core import kept
from dashboard.volumes.views import Mount, Row

CREATED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _row(state: str = "ready", can_act: bool = True, mounts=()) -> Row:
    volume = daytona.Volume(id="vol-1", name="data", state=state, created_at=CREATED)
    return Row(volume, can_act, mounts)


def _times(row: Row) -> dict:
    return {"created": row.volume.created_at, "last": row.volume.last_used_at}


@pytest.fixture
def rows():
    return kept.KeptRows("volumes/_row.html", "_state_badge.html", times=("created", "last"))


@pytest.fixture
def drawn():
    names: list[str] = []

    def seen(sender, template, context, **kwargs) -> None:
        if template.name == "volumes/_row.html":
            names.append(template.name)

    template_rendered.connect(seen)
    yield names
    template_rendered.disconnect(seen)


def test_a_row_is_drawn_once_and_its_words_of_time_are_filled_at_each_load(
    rows, drawn, monkeypatch
) -> None:
    (first,) = rows.html([_row()], _times)
    monkeypatch.setattr(kept, "naturaltime", lambda moment: "<soon> & then")
    (second,) = rows.html([_row()], _times)
    assert len(drawn) == 1
    assert "&lt;soon&gt; &amp; then</time>" in second
    assert "&lt;soon&gt;" not in first
    assert "<!--ago:" not in first + second


@pytest.mark.parametrize(
    "changed",
    [_row(state="error"), _row(can_act=False), _row(mounts=(Mount("sb-1", "web", "/data"),))],
    ids=["state", "who may act", "mounts"],
)
def test_a_row_drawn_from_other_data_is_drawn_again(rows, drawn, changed) -> None:
    (before,) = rows.html([_row()], _times)
    (after,) = rows.html([changed], _times)
    assert len(drawn) == 2
    assert before != after


def test_a_kept_row_follows_the_time_zone(rows) -> None:
    (utc,) = rows.html([_row()], _times)
    with timezone.override(zoneinfo.ZoneInfo("Asia/Kolkata")):
        (kolkata,) = rows.html([_row()], _times)
    assert "09:30:00 UTC" in utc
    assert "15:00:00 IST" in kolkata


def test_kept_rows_stay_within_their_limit(drawn) -> None:
    rows = kept.KeptRows("volumes/_row.html", times=("created", "last"), limit=2)
    states = ["ready", "error", "creating", "deleting"]
    rows.html([_row(state=state) for state in states], _times)
    assert len(rows) == 2
    rows.html([_row(state="ready")], _times)  # dropped, so drawn again
    assert len(drawn) == 5
