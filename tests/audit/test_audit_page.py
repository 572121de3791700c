"""The audit page: who reads which entries, every filter, keyset pages, an entry's
detail, new entries for auto-refresh, and bad input answered with a message."""

from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.accounts.models import Role
from dashboard.audit import query
from dashboard.audit.models import AuditEntry, Outcome
from dashboard.audit.trail import record
from tests.conftest import client_for, make_user
from tests.html_attrs import elements, text_of

STRANGER_IP = "198.51.100.23"


@contextmanager
def at(moment):
    """Entries recorded inside are stamped `moment` (the trail takes the time itself)."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


@pytest.fixture
def auditor_user(db):
    return make_user("aud", Role.AUDITOR)


@pytest.fixture
def auditor_client(auditor_user):
    return client_for(auditor_user)


@pytest.fixture
def trail(db, admin_user, member_user, viewer_user, other_member):
    """A stranger's failed sign-in, then ordinary work by each person."""
    record(
        None,
        "auth.sign_in",
        outcome=Outcome.FAILURE,
        client_ip=STRANGER_IP,
        error="wrong password",
        actor_name="hunter2-typed-as-name",
    )
    record(
        admin_user,
        "team.role",
        target_kind="user",
        target_id=str(member_user.pk),
        target_name="mel",
        client_ip="203.0.113.1",
        user_agent="Firefox/140",
        detail={"old": "viewer", "new": "member"},
    )
    record(
        member_user,
        "sandbox.start",
        target_kind="sandbox",
        target_id="sb-1",
        client_ip="203.0.113.2",
    )
    record(
        other_member,
        "sandbox.stop",
        target_kind="sandbox",
        target_id="sb-2",
        target_name="other-box",
    )
    record(viewer_user, "auth.sign_in", client_ip="203.0.113.3")


def results(response) -> str:
    return text_of(response.content.decode(), "results")


@pytest.mark.parametrize("who", ["admin_client", "auditor_client"])
def test_admins_and_auditors_read_every_entry_and_address(request, trail, who) -> None:
    html = request.getfixturevalue(who).get(reverse("audit")).content.decode()
    assert "hunter2-typed-as-name" in html and "other-box" in html
    for address in (STRANGER_IP, "203.0.113.1", "203.0.113.2", "203.0.113.3"):
        assert address in html


@pytest.mark.parametrize("who", ["member_client", "viewer_client"])
def test_members_and_viewers_read_only_their_own_entries(request, trail, who) -> None:
    client = request.getfixturevalue(who)
    text = results(client.get(reverse("audit")))
    own = "sandbox.start" if who == "member_client" else "auth.sign_in"
    assert own in text
    for foreign in ("hunter2-typed-as-name", "other-box", "team.role", STRANGER_IP):
        assert foreign not in text
    # Nor can a filter, the detail page or the new-entries feed dig them out.
    assert "other-box" not in results(client.get(reverse("audit"), {"q": "other-box"}))
    foreign_seq = AuditEntry.objects.get(action="sandbox.stop").seq
    assert client.get(reverse("audit_entry", args=[foreign_seq])).status_code == 404
    new = client.get(reverse("audit_new"), {"after": 0}).content.decode()
    assert "other-box" not in new and own in new


def seqs(html: str) -> list[int]:
    return [int(row["data-seq"]) for row in elements(html, "tbody", **{"class": "audit-entry"})]


def test_each_filter_narrows_the_list(admin_client, trail) -> None:
    def shown(**params) -> set[int]:
        return set(seqs(admin_client.get(reverse("audit"), params).content.decode()))

    def seq(**fields) -> int:
        return AuditEntry.objects.get(**fields).seq

    start, stop, role = (
        seq(action="sandbox.start"),
        seq(action="sandbox.stop"),
        seq(action="team.role"),
    )
    assert shown(actor="mel") == {start}
    assert shown(action="sandbox.") == {start, stop}
    assert shown(action="sandbox.stop") == {stop}
    assert shown(target_kind="user") == {role}
    assert shown(target="other-box") == shown(target="sb-2") == {stop}
    assert shown(outcome="failure") == {seq(outcome="failure")}
    assert shown(q="firefox") == {role}  # the user agent, any case
    assert shown(q=STRANGER_IP) == {seq(outcome="failure")}
    assert shown(actor="mel", action="team.") == set()
    assert len(shown()) == AuditEntry.objects.count() == 5


def test_quick_and_custom_time_ranges_pick_entries_by_when_they_were_written(
    admin_client, admin_user
) -> None:
    now = timezone.now()
    for age, name in [
        (timedelta(days=40), "old"),
        (timedelta(hours=3), "hours"),
        (timedelta(minutes=5), "recent"),
    ]:
        with at(now - age):
            record(admin_user, "sandbox.start", target_kind="sandbox", target_name=name)

    def names(**params) -> list[str]:
        html = admin_client.get(reverse("audit"), params).content.decode()
        return [n for n in ("old", "hours", "recent") if f"</span> {n}</td>" in html]

    assert names(range="15m") == ["recent"]
    assert names(range="24h") == ["hours", "recent"]
    assert names(range="30d") == ["hours", "recent"]
    assert names() == ["old", "hours", "recent"]
    since = (now - timedelta(days=41)).strftime("%Y-%m-%dT%H:%M")
    until = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert names(range="custom", since=since, until=until) == ["old", "hours"]
    assert names(since=since, until=until) == ["old", "hours"]  # dates alone mean custom
    future = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert names(range="custom", since=future) == []


def test_pages_are_cut_by_seq_and_walk_back_and_forth_without_gaps(
    admin_client, admin_user
) -> None:
    for i in range(120):
        record(admin_user, "sandbox.start", target_kind="sandbox", target_id=f"sb-{i}")

    def page(**params) -> tuple[list[int], dict[str, int]]:
        url = reverse("audit")
        html = admin_client.get(url, {"action": "sandbox.start", **params}).content.decode()
        cursors = {}
        for link in elements(html, "a"):
            last = link.get("hx-get", "").rpartition("&")[2]
            key, _, value = last.partition("=")
            if key in ("before", "after"):
                cursors[key] = int(value)
        return seqs(html), cursors

    first, cursors = page()
    assert len(first) == 50 and first == sorted(first, reverse=True) and "after" not in cursors
    second, cursors2 = page(before=cursors["before"])
    third, cursors3 = page(before=cursors2["before"])
    assert len(second) == 50 and len(third) == 20 and "before" not in cursors3
    assert sorted(first + second + third, reverse=True) == first + second + third
    assert len(set(first + second + third)) == 120
    back, _ = page(after=cursors3["after"])
    assert back == second
    back, cursors_back = page(after=cursors2["after"])
    assert back == first and "after" not in cursors_back


def test_an_entry_shows_before_and_after_the_address_and_the_user_agent(
    admin_client, trail
) -> None:
    entry = AuditEntry.objects.get(action="team.role")
    html = admin_client.get(reverse("audit_entry", args=[entry.seq])).content.decode()
    changes = elements(html, "table", **{"class": "table audit-changes"})
    assert changes
    assert "Firefox/140" in html and "203.0.113.1" in html
    assert ">viewer</td>" in html and ">member</td>" in html
    # No form on it posts to the trail (the frame's own forms, such as sign-out, aside).
    posts = [f["action"] for f in elements(html, "form", method="post")]
    assert reverse("logout") in posts
    assert not [action for action in posts if action.startswith(reverse("audit"))]
    # The list opens the same detail in place, fetched as a fragment.
    listing = admin_client.get(reverse("audit")).content.decode()
    url = reverse("audit_entry", args=[entry.seq])
    assert elements(listing, "tr", id=f"detail-{entry.seq}", data_detail=url)
    assert elements(listing, "button", **{"aria-controls": f"detail-{entry.seq}"})
    fragment = admin_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and "Firefox/140" in fragment and ">member</td>" in fragment


def test_new_entries_for_auto_refresh_come_newest_first_after_the_newest_shown(
    admin_client, admin_user, trail
) -> None:
    newest = AuditEntry.objects.order_by("-seq").first().seq
    empty = admin_client.get(reverse("audit_new"), {"after": newest, "action": "sandbox."})
    assert empty.status_code == 200 and empty["X-Audit-Newest"] == str(newest)
    assert not elements(empty.content.decode(), "tbody")
    record(admin_user, "sandbox.start", target_kind="sandbox", target_id="sb-new-1")
    record(admin_user, "team.add", target_kind="user", target_name="filtered-out")
    record(admin_user, "sandbox.delete", target_kind="sandbox", target_id="sb-new-2")
    reply = admin_client.get(reverse("audit_new"), {"after": newest, "action": "sandbox."})
    html = reply.content.decode()
    rows = [r["data-seq"] for r in elements(html, "tbody", **{"class": "audit-entry"})]
    assert rows == [str(newest + 3), str(newest + 1)] and "filtered-out" not in html
    assert reply["X-Audit-Newest"] == str(newest + 3) and reply["X-Audit-More"] == "0"


def test_the_refresh_choice_is_in_the_url_and_only_the_newest_page_follows(
    admin_client, trail
) -> None:
    html = admin_client.get(reverse("audit"), {"refresh": "30", "actor": "ada"}).content.decode()
    live = elements(html, "div", id="results")[0]
    assert live["data-audit-every"] == "30" and "actor=ada" in live["data-audit-live"]
    assert elements(html, "option", value="30", selected="")
    html = admin_client.get(reverse("audit"), {"refresh": "30", "before": 3}).content.decode()
    assert "data-audit-live" not in elements(html, "div", id="results")[0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "Enter a date and time"),
        ({"until": "2026-13-45T99:99"}, "Enter a date and time"),
        (
            {"range": "custom", "since": "2026-12-02T10:00", "until": "2026-12-01T10:00"},
            "must be before",
        ),
        ({"range": "1h", "since": "2026-12-02T10:00"}, "quick range and custom dates"),
        ({"range": "2w"}, "Select a valid choice"),
        ({"colour": "red"}, "Unknown filter “colour”"),
        ({"page": "2"}, "Unknown filter “page”"),
        ({"before": "99999999999999999999999999"}, "less than or equal to"),
        ({"before": "-4"}, "greater than or equal to"),
        ({"before": "abc"}, "Enter a whole number"),
        ({"before": "5", "after": "2"}, "not both"),
        ({"action": "<script>"}, "Not an action name"),
        ({"outcome": "maybe"}, "Select a valid choice"),
        ({"refresh": "5"}, "Select a valid choice"),
        ({"q": "x" * 201}, "at most 200 characters"),
    ],
)
def test_bad_input_is_a_400_that_says_what_is_wrong(admin_client, trail, params, message) -> None:
    response = admin_client.get(reverse("audit"), params)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "No entries match" not in response.content.decode()


def test_the_new_entries_feed_refuses_bad_input_with_a_message(admin_client, trail) -> None:
    for params in ({}, {"after": "x"}, {"after": "1", "colour": "red"}):
        response = admin_client.get(reverse("audit_new"), params)
        assert response.status_code == 400 and response.content


@pytest.mark.parametrize("name", ["audit", "audit_new", "audit_export"])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_no_page_changes_an_audit_entry(admin_client, trail, name, method) -> None:
    before = list(AuditEntry.objects.order_by("seq").values_list("seq", "hash"))
    response = getattr(admin_client, method)(reverse(name))
    assert response.status_code in (403, 405)
    entry = reverse("audit_entry", args=[before[0][0]])
    assert getattr(admin_client, method)(entry).status_code == 405
    after = list(AuditEntry.objects.order_by("seq").values_list("seq", "hash"))
    assert after == before


def test_suggestions_for_who_and_what_come_from_the_entries_one_may_read(
    member_client, admin_client, trail
) -> None:
    def actions(html: str) -> list[str]:
        return [o["value"] for o in elements(html, "option") if "." in o.get("value", "")]

    assert actions(member_client.get(reverse("audit")).content.decode()) == ["sandbox.start"]
    assert "team.role" in actions(admin_client.get(reverse("audit")).content.decode())


def test_visible_entries_is_empty_for_someone_signed_out(trail) -> None:
    from django.contrib.auth.models import AnonymousUser

    assert not query.visible_entries(AnonymousUser()).exists()


@pytest.mark.parametrize("seq", [0, 999_999, 10**30])
def test_an_entry_that_does_not_exist_is_a_404_however_large_its_number(admin_client, seq):
    assert admin_client.get(f"/audit/{seq}/").status_code == 404


def test_text_search_reads_a_window_of_entries_at_a_time_and_older_goes_on(
    admin_client, admin_user, monkeypatch
) -> None:
    monkeypatch.setattr(query, "TEXT_WINDOW", 10)
    for i in range(1, 36):
        record(admin_user, "sandbox.start", target_id=f"needle-{i}" if i in (3, 30) else f"x-{i}")

    def page(**params) -> tuple[list[int], dict[str, int], str]:
        html = admin_client.get(reverse("audit"), {"q": "needle", **params}).content.decode()
        cursors = {}
        for link in elements(html, "a"):
            key, _, value = link.get("hx-get", "").rpartition("&")[2].partition("=")
            if key in ("before", "after"):
                cursors[key] = int(value)
        return seqs(html), cursors, html

    shown, cursors, html = page()
    assert shown == [30] and cursors == {"before": 26}
    assert "among entries #26 to #35" in html
    walked = []
    while "before" in cursors:
        shown, cursors, _ = page(before=cursors["before"])
        walked += shown
    assert walked == [3]  # reached, window by window, and then no further
    shown, cursors, _ = page(after=25)
    assert shown == [30] and "after" not in cursors
