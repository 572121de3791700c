import tarfile

import pytest
from django.urls import reverse

from dashboard.audit.models import AuditEntry
from tests.snapshots.conftest import HX, engine_call, wait_for_snapshot


@pytest.fixture
def cleanup(daytona_engine):
    names: list[str] = []
    yield names
    for name in names:
        found = engine_call(daytona_engine, "GET", f"/snapshots/{name}")
        if found.status_code == 200:
            engine_call(daytona_engine, "DELETE", f"/snapshots/{found.json()['id']}")


@pytest.mark.parametrize("htmx", [False, True])
def test_the_form_explains_each_source(daytona_engine, admin_client, htmx) -> None:
    response = admin_client.get(reverse("snapshot_create"), headers=HX if htmx else {})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="create-form"' in html
    if not htmx:
        for words in ("Container image", "Tarball", "Debian base", "A sandbox"):
            assert words in html


def test_an_admin_builds_from_a_directory_and_lands_on_its_page(
    daytona_engine, admin_client, source_dir, cleanup
) -> None:
    cleanup.append("from-dir-1")
    response = admin_client.post(
        reverse("snapshot_create"),
        {"name": "from-dir-1", "kind": "dir", "source": str(source_dir)},
        headers=HX,
    )
    assert response.status_code == 200, response.content[:500]
    found = engine_call(daytona_engine, "GET", "/snapshots/from-dir-1").json()
    assert response["HX-Redirect"] == reverse("snapshot", args=[found["id"]])
    assert found["imageName"] == f"dir:{source_dir}"
    wait_for_snapshot(daytona_engine, found["id"], "active")
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.outcome, entry.target_name) == (
        "snapshot.create",
        "success",
        "from-dir-1",
    )


def test_it_builds_from_a_tarball_with_resources(
    daytona_engine, admin_client, tmp_path, source_dir, cleanup
) -> None:
    archive = tmp_path / "root.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source_dir, arcname=".")
    cleanup.append("from-tar-1")
    response = admin_client.post(
        reverse("snapshot_create"),
        {"name": "from-tar-1", "kind": "tar", "source": str(archive), "cpu": "2", "disk": "4"},
    )
    assert response.status_code == 302
    found = wait_for_snapshot(daytona_engine, "from-tar-1", "active")
    assert (found["cpu"], found["disk"]) == (2, 4)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"name": "x:latest", "kind": "dir", "source": "/tmp"}, "refuses the :latest tag"),
        ({"name": "bad name", "kind": "dir", "source": "/tmp"}, "letters, digits"),
        ({"name": "rel", "kind": "dir", "source": "relative/path"}, "absolute path"),
        ({"name": "img", "kind": "image", "source": ""}, "Name the image"),
        ({"name": "deb", "kind": "debian", "source": "Not A Suite"}, "Debian suite"),
        ({"name": "sbx", "kind": "sandbox", "source": "../x"}, "id or name"),
        ({"name": "nope", "kind": "floppy", "source": "/tmp"}, "Select a valid choice"),
    ],
)
def test_bad_input_re_renders_the_form_with_the_reason(
    daytona_engine, admin_client, data, words
) -> None:
    response = admin_client.post(reverse("snapshot_create"), data, headers=HX)
    assert response.status_code == 200
    assert words in response.content.decode()
    assert "HX-Redirect" not in response


def test_daytonas_refusal_shows_on_the_form(daytona_engine, admin_client) -> None:
    # The engine pulls no images: Daytona's own reason is shown beside the source.
    response = admin_client.post(
        reverse("snapshot_create"),
        {"name": "pull-me", "kind": "image", "source": "python:3.12-slim"},
        headers=HX,
    )
    assert response.status_code == 200
    assert "cannot pull the image" in response.content.decode()
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.outcome) == ("snapshot.create", "failure")


def test_a_duplicate_name_is_refused_on_the_name(
    daytona_engine, make_snapshot, admin_client, source_dir
) -> None:
    existing = make_snapshot()
    response = admin_client.post(
        reverse("snapshot_create"),
        {"name": existing["name"], "kind": "dir", "source": str(source_dir)},
        headers=HX,
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


@pytest.mark.parametrize("who", ["member_client", "viewer_client"])
def test_only_admins_create_snapshots(daytona_engine, request, who) -> None:
    client = request.getfixturevalue(who)
    assert client.get(reverse("snapshot_create")).status_code == 403
    response = client.post(reverse("snapshot_create"), {"name": "x", "kind": "dir", "source": "/"})
    assert response.status_code == 403


def test_an_admin_snapshots_a_sandboxs_files(daytona_engine, admin_client, cleanup) -> None:
    made = engine_call(daytona_engine, "POST", "/sandbox", json={"name": "to-capture-1"})
    assert made.status_code == 200, made.text
    cleanup.append("captured-1")
    try:
        response = admin_client.post(
            reverse("snapshot_create"),
            {"name": "captured-1", "kind": "sandbox", "source": "to-capture-1"},
            headers=HX,
        )
        assert response.status_code == 200, response.content[:300]
        found = engine_call(daytona_engine, "GET", "/snapshots/captured-1").json()
        assert response["HX-Redirect"] == reverse("snapshot", args=[found["id"]])
        assert found["sourceSandboxId"] == made.json()["id"]
        wait_for_snapshot(daytona_engine, found["id"], "active", "build_failed")
        entry = AuditEntry.objects.order_by("-seq").first()
        assert (entry.action, entry.detail) == (
            "snapshot.create",
            {"source": "sandbox to-capture-1"},
        )
    finally:
        engine_call(daytona_engine, "DELETE", f"/sandbox/{made.json()['id']}")


def test_snapshotting_a_missing_sandbox_says_so(daytona_engine, admin_client) -> None:
    response = admin_client.post(
        reverse("snapshot_create"),
        {"name": "captured-2", "kind": "sandbox", "source": "no-such-sandbox"},
        headers=HX,
    )
    assert response.status_code == 200
    assert "not found" in response.content.decode().lower()
