"""The trail's rows are drawn once and kept (dashboard/audit/rows.py): a kept row is
only ever served to a reader who would have seen the same row drawn afresh."""

import zoneinfo

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.signals import template_rendered
from django.urls import reverse
from django.utils import timezone

from dashboard.audit import rows
from dashboard.audit.models import AuditEntry
from dashboard.audit.trail import record

ADDRESS = "203.0.113.77"


@pytest.fixture(autouse=True)
def _nothing_kept():
    rows._KEPT.clear()
    yield
    rows._KEPT.clear()


@pytest.fixture
def entry(db, member_user) -> AuditEntry:
    record(member_user, "sandbox.start", target_kind="sandbox", client_ip=ADDRESS)
    return AuditEntry.objects.latest("seq")


def test_a_row_kept_for_its_actor_does_not_show_the_address_to_another_reader(
    entry, member_user, other_member
) -> None:
    (own,) = rows.rows_html([entry], member_user.pk, reads_all=False)
    (other,) = rows.rows_html([entry], other_member.pk, reads_all=False)
    assert ADDRESS in own
    assert ADDRESS not in other
    assert ">hidden</span>" in other


def test_a_kept_row_follows_the_readers_time_zone(entry, member_user) -> None:
    (utc,) = rows.rows_html([entry], member_user.pk, reads_all=True)
    with timezone.override(zoneinfo.ZoneInfo("Asia/Kolkata")):
        (kolkata,) = rows.rows_html([entry], member_user.pk, reads_all=True)
    assert " UTC</time>" in utc
    assert " IST</time>" in kolkata
    assert "+05:30" in kolkata


def test_rows_kept_stay_within_their_bound(db, member_user, monkeypatch) -> None:
    monkeypatch.setattr(rows, "KEEP_ROWS", 3)
    for n in range(6):
        record(member_user, "sandbox.stop", target_kind="sandbox", target_name=f"kept-{n}")
    entries = list(AuditEntry.objects.order_by("-seq"))
    drawn = rows.rows_html(entries, member_user.pk, reads_all=True)
    assert len(drawn) == 6
    assert len(rows._KEPT) == 3
    assert all(f"kept-{n}" in html for n, html in zip(range(5, -1, -1), drawn, strict=True))


def test_the_newest_page_loaded_again_draws_no_row_again(entry, admin_client) -> None:
    drawn: list[str] = []

    def count(sender, template, context, **kwargs) -> None:
        drawn.append(template.name)

    template_rendered.connect(count)
    try:
        first = admin_client.get(reverse("audit"))
        rows_first = drawn.count(rows.TEMPLATE)
        second = admin_client.get(reverse("audit"))
    finally:
        template_rendered.disconnect(count)
    assert first.status_code == second.status_code == 200
    assert rows_first >= 1
    assert drawn.count(rows.TEMPLATE) == rows_first
    assert first.content.count(b'class="audit-entry"') == second.content.count(
        b'class="audit-entry"'
    )


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_iso_and_stamp_say_what_djangos_date_filter_says(zone) -> None:
    moment = timezone.now()
    template = Template(
        "{% load sandbar %}{{ t|date:'c' }}|{{ t|iso }}|{{ t|date:'Y-m-d H:i:s T' }}|{{ t|stamp }}"
    )
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        django_c, ours_c, django_t, ours_t = template.render(Context({"t": moment})).split("|")
    assert ours_c == django_c
    assert ours_t == django_t


def test_an_entry_altered_behind_the_trails_back_is_drawn_as_it_now_reads(
    entry, member_user
) -> None:
    # Its stored hash unchanged: the chain check reports it, and the list must show what
    # the check is about, not the row kept from before.
    rows.rows_html([entry], member_user.pk, reads_all=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditentry SET actor_name = 'mallory', client_ip = '198.51.100.9' "
            "WHERE seq = %s",
            [entry.seq],
        )
    (after,) = rows.rows_html([AuditEntry.objects.get(seq=entry.seq)], member_user.pk, True)
    assert "mallory" in after
    assert "198.51.100.9" in after
    assert ADDRESS not in after
