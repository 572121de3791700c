import itertools

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from dashboard.audit.models import AppendOnlyError, AuditEntry, Outcome
from dashboard.audit.trail import record, verify_chain


@pytest.fixture
def chain(db, admin_user):
    return [
        record(
            admin_user,
            "sandbox.start",
            target_kind="sandbox",
            target_id=f"sb-{i}",
            client_ip="10.1.1.1",
        )
        for i in range(5)
    ]


def test_each_entry_is_chained_to_the_one_before(chain) -> None:
    assert chain[0].prev_hash == "0" * 64
    for before, after in itertools.pairwise(chain):
        assert after.prev_hash == before.hash and after.seq == before.seq + 1
    assert list(verify_chain()) == []
    call_command("verify_audit_chain")


def test_verification_fails_when_a_row_is_tampered_with_in_the_database(chain) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET outcome = %s WHERE seq = 3", [Outcome.FAILURE])
    problems = list(verify_chain())
    assert [(p.seq, p.reason) for p in problems] == [(3, "its content does not match its hash")]
    with pytest.raises(CommandError, match="broken in 1 place"):
        call_command("verify_audit_chain")


def test_verification_fails_when_a_row_is_removed_from_the_middle(chain) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE seq = 2")
    reasons = {p.reason for p in verify_chain()}
    assert "does not follow the entry before it" in reasons
    assert any("missing" in r for r in reasons)


def test_verification_fails_when_a_hash_is_recomputed_after_an_edit(chain) -> None:
    # Someone who edits a row and fixes its own hash still breaks the next link.
    entry = AuditEntry.objects.get(seq=2)
    entry.actor_name = "mallory"
    new_hash = entry.compute_hash()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET actor_name = 'mallory', hash = %s WHERE seq = 2",
            [new_hash],
        )
    assert [p.seq for p in verify_chain()] == [3]


def test_entries_cannot_be_changed_or_deleted_through_the_code(chain) -> None:
    entry = chain[0]
    entry.action = "other"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(seq=1).update(action="x")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.count() == 5


def test_the_audit_page_filters_by_action_and_outcome(admin_client, chain, admin_user) -> None:
    record(admin_user, "team.role", outcome=Outcome.DENIED, error="last admin")
    response = admin_client.get(reverse("audit"), {"action": "team.", "outcome": "denied"})
    assert response.status_code == 200
    assert b"last admin" in response.content and b"sb-1" not in response.content


def test_the_audit_page_serves_a_fragment_to_htmx(admin_client, chain) -> None:
    response = admin_client.get(
        reverse("audit"), {"target": "sb-2"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert b'id="results"' in response.content and b"<html" not in response.content
    assert b"sb-2" in response.content and b"sb-3" not in response.content


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, b"Enter a date and time"),
        ({"before": "-4"}, b"greater than or equal to 1"),
        ({"outcome": "exploded"}, b"Select a valid choice"),
        ({"since": "2026-02-01T00:00", "until": "2026-01-01T00:00"}, b"must be before"),
    ],
)
def test_bad_filters_get_a_400_with_the_reason(admin_client, chain, query, message) -> None:
    response = admin_client.get(reverse("audit"), query)
    assert response.status_code == 400
    assert message in response.content
