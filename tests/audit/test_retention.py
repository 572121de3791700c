"""Retention: old entries go, an anchor stays, and the rest still verifies from it."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from dashboard.accounts.models import Role
from dashboard.audit.models import AuditAnchor, AuditEntry
from dashboard.audit.trail import check_chain, prune, record, verify_chain
from tests.conftest import client_for, make_user


@pytest.fixture
def aged(db, admin_user):
    """Ten entries 100 days old, then five from today."""
    now = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=now - timedelta(days=100)):
        old = [record(admin_user, "sandbox.start", target_id=f"old-{i}") for i in range(10)]
    new = [record(admin_user, "sandbox.start", target_id=f"new-{i}") for i in range(5)]
    return old, new


def test_pruning_keeps_an_anchor_and_the_rest_still_verifies(aged) -> None:
    old, _ = aged
    made = prune(90)
    assert made is not None
    assert (made.seq, made.hash, made.created_at) == (old[-1].seq, old[-1].hash, old[-1].created_at)
    assert made.pruned == 10
    assert not AuditEntry.objects.filter(seq__lte=old[-1].seq).exists()
    assert list(verify_chain()) == []
    report = check_chain()
    assert report.intact and report.anchor_seq == old[-1].seq
    assert report.through_seq == AuditEntry.objects.order_by("-seq").first().seq
    # The pruning is in the trail too, with the anchor it left.
    note = AuditEntry.objects.get(action="audit.prune")
    assert note.detail["anchor_hash"] == old[-1].hash and note.detail["removed"] == 10


def test_removing_more_than_retention_did_is_caught(aged) -> None:
    _, new = aged
    prune(90)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE seq = %s", [new[0].seq])
    problems = list(verify_chain())
    assert [p.seq for p in problems] == [new[1].seq, new[1].seq]
    assert "entries are missing" in problems[0].reason


def test_a_forged_anchor_is_caught(aged) -> None:
    prune(90)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET hash = %s", ["f" * 64])
        cursor.execute("UPDATE audit_auditanchor SET hash = %s", ["e" * 64])
    assert not check_chain().intact


def test_nothing_old_enough_is_nothing_pruned(aged) -> None:
    assert prune(365) is None
    assert not AuditAnchor.objects.exists()


def test_the_newest_entry_is_never_pruned_so_the_chain_never_empties(db, admin_user) -> None:
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() - timedelta(days=9)):
        entries = [record(admin_user, "sandbox.start") for _ in range(3)]
    made = prune(1)
    assert made.seq == entries[1].seq
    assert AuditEntry.objects.filter(seq=entries[2].seq).exists()
    assert check_chain().intact


def test_the_command_prunes_with_the_setting_and_verify_names_the_anchor(
    aged, settings, capsys
) -> None:
    settings.AUDIT_RETENTION_DAYS = 0
    call_command("prune_audit")
    assert "every entry is kept" in capsys.readouterr().out
    assert AuditEntry.objects.count() == 15
    settings.AUDIT_RETENTION_DAYS = 30
    call_command("prune_audit")
    assert "removed 10 entries" in capsys.readouterr().out
    call_command("verify_audit_chain")
    assert "from the anchor at #10" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("prune_audit", "--days=-1")


def test_auditors_and_admins_see_the_chain_and_run_the_check(aged, admin_user) -> None:
    prune(90)
    auditor = client_for(make_user("aud", Role.AUDITOR))
    html = auditor.get(reverse("audit")).content.decode()
    assert 'id="chain"' in html and "Not checked from this page yet" in html
    assert "were pruned on" in html
    response = auditor.post(reverse("audit_check"))
    assert response.status_code == 302
    html = auditor.get(reverse("audit")).content.decode()
    last = AuditEntry.objects.filter(action="audit.verify").get()
    assert f"through entry #{last.detail['through_seq']}" in html and "Verified" in html
    assert last.actor_name == "aud" and last.detail["anchor_seq"] == 10


def test_a_broken_chain_is_shown_where_it_breaks(aged, admin_client) -> None:
    _, new = aged
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET target_id = 'x' WHERE seq = %s", [new[2].seq])
    admin_client.post(reverse("audit_check"))
    html = admin_client.get(reverse("audit")).content.decode()
    assert "Broken" in html and f"at entry #{new[2].seq}" in html
    assert f"intact through #{new[1].seq}" in html


@pytest.mark.parametrize("who", ["member_client", "viewer_client"])
def test_members_and_viewers_neither_see_nor_run_the_check(request, aged, who) -> None:
    client = request.getfixturevalue(who)
    assert 'id="chain"' not in client.get(reverse("audit")).content.decode()
    assert client.post(reverse("audit_check")).status_code == 403
    assert not AuditEntry.objects.filter(action="audit.verify").exists()
