"""The export's fast path on SQLite (each value read as the file writes it) against
the general one (each value turned into text in Python), on awkward values."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from dashboard.audit import export
from dashboard.audit.models import AuditEntry
from dashboard.audit.trail import record

AWKWARD = [
    "plain",
    "a, comma",
    'a "quoted" word',
    "two\nlines",
    "carriage\rreturn",
    "ünïcødé — ☃",
    "",
]


@pytest.fixture
def awkward_trail(db, admin_user):
    for index, text in enumerate(AWKWARD):
        record(
            admin_user if index % 2 else None,
            "sandbox.start",
            target_kind="sandbox",
            target_id=f"sb-{index}",
            target_name=text,
            user_agent=f"UA ({text})",
            error=text,
            detail={"text": text, "n": index, "nested": {"list": [1, "two"]}},
        )
    return AuditEntry.objects.all()


def _both(entries, fmt: str) -> tuple[str, str]:
    top = entries.order_by("-seq").values_list("seq", flat=True).first() + 1
    fast = export._read_encoded(entries, top, fmt, finished=True)
    general = export._read_encoded(entries, top, fmt, finished=False)
    assert fast[0] == general[0] == 1
    return fast[1], general[1]


def test_the_fast_csv_is_byte_for_byte_the_general_one(awkward_trail) -> None:
    fast, general = _both(awkward_trail, "csv")
    assert fast == general
    rows = list(csv.reader(io.StringIO(fast)))
    assert [row[export.COLUMNS.index("target_name")] for row in rows] == AWKWARD[::-1]
    first = awkward_trail.get(seq=1)
    assert rows[-1][1] == first.created_at.isoformat()


def test_the_fast_json_lines_hold_the_same_objects_as_the_general_ones(awkward_trail) -> None:
    fast, general = _both(awkward_trail, "jsonl")
    fast_items = [json.loads(line) for line in fast.splitlines()]
    assert fast_items == [json.loads(line) for line in general.splitlines()]
    assert [item["detail"]["text"] for item in fast_items] == AWKWARD[::-1]
    assert list(fast_items[0]) == list(export.COLUMNS)


def test_a_time_stored_in_another_form_is_still_written_in_utc(awkward_trail, admin_user) -> None:
    """A time SQLite holds in a form Django does not write (an import, say) sends its
    chunk the general way instead of out as it is."""
    last = awkward_trail.order_by("-seq").first()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditentry (seq, created_at, actor_id, actor_name, action,"
            " target_kind, target_id, target_name, outcome, error, client_ip, user_agent,"
            " connection, detail, prev_hash, hash)"
            " VALUES (%s, %s, NULL, 'imp', 'x.y', '', '', '', 'success', '', '', '', '',"
            " '{}', %s, %s)",
            [last.seq + 1, "2026-01-02 03:04:05.5", last.hash, "f" * 64],
        )
    for fmt in ("csv", "jsonl"):
        fast, general = _both(AuditEntry.objects.all(), fmt)
        assert "2026-01-02T03:04:05.500000+00:00" in fast
        assert fast.splitlines()[0] == general.splitlines()[0]


def test_an_export_of_several_chunks_on_the_fast_path_misses_no_entry(
    awkward_trail, monkeypatch
) -> None:
    monkeypatch.setattr(export, "CHUNK", 3)
    since = timezone.now() - timedelta(days=1)
    assert awkward_trail.filter(created_at__gte=since).count() == len(AWKWARD)
    below, seen = len(AWKWARD) + 1, []
    while True:
        below, text = export._read_encoded(awkward_trail, below, "csv", finished=True)
        if not below:
            break
        seen += [int(row[0]) for row in csv.reader(io.StringIO(text))]
    assert seen == list(range(len(AWKWARD), 0, -1))
