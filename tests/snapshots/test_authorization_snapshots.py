"""A snapshot's own pages, by who asks, against a real snapshot on the engine.

(They take a snapshot id, so they live here rather than in the shared table,
whose GET rows are also fetched without arguments by the CSP test.)
"""

import pytest
from django.urls import reverse

from tests.conftest import client_for
from tests.test_authorization import everyone  # noqa: F401

WHO = ["anonymous", "viewer", "member", "admin"]


@pytest.mark.parametrize("who", WHO)
def test_a_snapshots_page_and_log_answer_everyone_signed_in(
    everyone,  # noqa: F811
    make_snapshot,
    who,
) -> None:
    snapshot = make_snapshot()
    client = client_for(None if who == "anonymous" else everyone[who])
    for url in (
        reverse("snapshot", args=[snapshot["id"]]),
        reverse("snapshot_log", args=[snapshot["id"]]),
    ):
        response = client.get(url)
        if who == "anonymous":
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("login"))
        else:
            assert response.status_code in (200, 286), (url, response.status_code)


@pytest.mark.parametrize("who", ["viewer", "member", "admin"])
def test_missing_snapshots_and_bad_offsets_are_refused_alike(everyone, who) -> None:  # noqa: F811
    client = client_for(everyone[who])
    assert client.get(reverse("snapshot", args=["no-such-snapshot"])).status_code == 404
    url = reverse("snapshot_log", args=["no-such"])
    assert client.get(url, {"offset": "x"}).status_code == 400
