"""The streamed export: CSV and JSON Lines of the filtered trail, in chunks, audited."""

import csv
import io
import itertools
import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse
from django.utils import timezone

from dashboard.accounts.models import Role
from dashboard.audit import export
from dashboard.audit.models import AuditEntry
from dashboard.audit.trail import record
from tests.conftest import client_for, make_user


def body(response) -> str:
    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)().decode()


@pytest.fixture
def auditor_client(db):
    return client_for(make_user("aud", Role.AUDITOR))


@pytest.fixture
def trail(db, admin_user, member_user):
    for i in range(23):
        who = admin_user if i % 2 else member_user
        record(who, "sandbox.start", target_kind="sandbox", target_id=f"sb-{i}", user_agent="UA/1")
    record(admin_user, "team.role", target_kind="user", target_name="mel", detail={"old": "a"})


def test_a_csv_export_holds_every_matching_entry_newest_first_across_chunks(
    auditor_client, trail, monkeypatch
) -> None:
    monkeypatch.setattr(export, "CHUNK", 5)  # several chunks, one of them partial
    response = auditor_client.get(
        reverse("audit_export"), {"format": "csv", "action": "sandbox.start"}
    )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert [r["target_id"] for r in rows] == [f"sb-{i}" for i in range(22, -1, -1)]
    first = AuditEntry.objects.get(target_id="sb-22")
    assert rows[0]["hash"] == first.hash and rows[0]["user_agent"] == "UA/1"
    assert rows[0]["created_at"] == first.created_at.isoformat()
    assert json.loads(rows[0]["detail"]) == {}


def test_a_json_lines_export_is_one_object_per_line_with_the_detail_as_json(
    admin_client, trail
) -> None:
    response = admin_client.get(reverse("audit_export"), {"format": "jsonl", "action": "team."})
    assert response["Content-Type"] == "application/x-ndjson"
    lines = body(response).splitlines()
    assert len(lines) == 1
    item = json.loads(lines[0])
    assert item["action"] == "team.role" and item["detail"] == {"old": "a"}
    assert set(item) == set(export.COLUMNS)


def test_the_export_is_itself_recorded_and_leaves_itself_out(admin_client, trail) -> None:
    before = AuditEntry.objects.count()
    response = admin_client.get(reverse("audit_export"), {"format": "jsonl", "actor": "ada"})
    lines = body(response).splitlines()
    entry = AuditEntry.objects.order_by("-seq").first()
    assert AuditEntry.objects.count() == before + 1
    assert entry.action == "audit.export" and entry.actor_name == "ada"
    assert entry.detail["filters"] == {"actor": "ada"} and entry.detail["format"] == "jsonl"
    assert "audit.export" not in {json.loads(line)["action"] for line in lines}
    assert len(lines) == AuditEntry.objects.filter(actor_name="ada", seq__lt=entry.seq).count()


def test_the_file_name_says_the_range(admin_client, trail) -> None:
    response = admin_client.get(
        reverse("audit_export"),
        {
            "format": "csv",
            "range": "custom",
            "since": "2026-01-02T03:04",
            "until": "2026-02-03T04:05",
        },
    )
    assert response["Content-Disposition"] == (
        'attachment; filename="sandbar-audit-20260102T030400Z--20260203T040500Z.csv"'
    )
    response = admin_client.get(reverse("audit_export"), {"format": "jsonl", "range": "1h"})
    name = response["Content-Disposition"].split('"')[1]
    start = (timezone.now() - timedelta(hours=1)).strftime("%Y%m%dT%H")
    assert name.startswith(f"sandbar-audit-{start}") and name.endswith(".jsonl")
    response = admin_client.get(reverse("audit_export"), {"format": "csv"})
    assert response["Content-Disposition"].split('"')[1].startswith("sandbar-audit-start--")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Format: This field is required"),
        ({"format": "xml"}, "Select a valid choice"),
        ({"format": "csv", "since": "soon"}, "Enter a date and time"),
        ({"format": "csv", "since": "2026-02-01T00:00", "until": "2026-01-01T00:00"}, "before"),
        ({"format": "csv", "before": "10"}, "no page cursor"),
        ({"format": "csv", "limit": "10"}, "Unknown filter “limit”"),
    ],
)
def test_a_malformed_export_request_is_a_400_saying_why(admin_client, trail, params, message):
    count = AuditEntry.objects.count()
    response = admin_client.get(reverse("audit_export"), params)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert AuditEntry.objects.count() == count  # a refused export is no export


@pytest.mark.parametrize("who", ["member_client", "viewer_client"])
def test_members_and_viewers_may_not_export(request, trail, who) -> None:
    response = request.getfixturevalue(who).get(reverse("audit_export"), {"format": "csv"})
    assert response.status_code == 403


def test_an_empty_result_is_a_file_with_the_header_only(admin_client, trail) -> None:
    response = admin_client.get(reverse("audit_export"), {"format": "csv", "actor": "nobody"})
    assert body(response) == ",".join(export.COLUMNS) + "\r\n"


def test_an_exported_file_is_enough_to_check_its_chain_elsewhere(admin_client, trail) -> None:
    """Every hashed field is in the file: each line's hash can be recomputed from it."""
    from datetime import datetime

    from dashboard.audit.models import AuditEntry as Entry

    lines = body(admin_client.get(reverse("audit_export"), {"format": "jsonl"})).splitlines()
    items = [json.loads(line) for line in lines]
    assert len(items) == 24
    for newer, older in itertools.pairwise(items):
        assert newer["prev_hash"] == older["hash"]
    for item in items:
        fields = {k: v for k, v in item.items() if k != "hash"}
        fields["created_at"] = datetime.fromisoformat(fields["created_at"])
        assert Entry(**fields).compute_hash() == item["hash"], item["seq"]


@pytest.mark.parametrize("fast", [True, False], ids=["sqlite-text-times", "general"])
def test_a_csv_cell_a_spreadsheet_would_run_starts_with_an_apostrophe(
    admin_client, admin_user, monkeypatch, fast
) -> None:
    monkeypatch.setattr(export, "_sqlite", lambda entries: fast)
    values = ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", "'quoted", "plain"]
    for value in values:
        record(
            admin_user, "sandbox.start", target_kind="sandbox", target_name=value, user_agent=value
        )
    csv_rows = list(
        csv.DictReader(
            io.StringIO(
                body(
                    admin_client.get(
                        reverse("audit_export"), {"format": "csv", "action": "sandbox.start"}
                    )
                )
            )
        )
    )
    json_rows = [
        json.loads(line)
        for line in body(
            admin_client.get(
                reverse("audit_export"), {"format": "jsonl", "action": "sandbox.start"}
            )
        ).splitlines()
    ]
    written = [row["target_name"] for row in reversed(csv_rows)]
    assert written == ["'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(A1)", "'\tx", "''quoted", "plain"]
    assert [row["user_agent"] for row in reversed(csv_rows)] == written
    # Dropping a leading apostrophe gives each value back; JSON Lines carry them as they are.
    assert [w[1:] if w.startswith("'") else w for w in written] == values
    assert [row["target_name"] for row in reversed(json_rows)] == values
