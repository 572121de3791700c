import socket
import tarfile

import httpx
import msgspec
import pytest
from django.urls import reverse

from dashboard import daytona
from dashboard.audit.models import AuditEntry
from dashboard.daytona import client
from tests.html_attrs import elements, text_of
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
        for words in ("Tarball", "Debian base", "A sandbox"):
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
        ({"name": "deb", "kind": "debian", "source": "Not A Suite"}, "Debian suite"),
        ({"name": "sbx", "kind": "sandbox", "source": "../x"}, "id or name"),
        (
            {"name": "nope", "kind": "floppy", "source": "/tmp"},
            "not a source this connection builds from",
        ),
    ],
)
def test_bad_input_re_renders_the_form_with_the_reason(
    daytona_engine, admin_client, data, words
) -> None:
    response = admin_client.post(reverse("snapshot_create"), data, headers=HX)
    assert response.status_code == 200
    assert words in response.content.decode()
    assert "HX-Redirect" not in response


def test_daytonas_refusal_shows_on_the_form(daytona_engine, admin_client, source_dir) -> None:
    # A tarball that is a directory: the engine's own reason is shown beside the source.
    response = admin_client.post(
        reverse("snapshot_create"),
        {"name": "untar-me", "kind": "tar", "source": str(source_dir)},
        headers=HX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "is not a file" in text_of(html, "id_source_error")
    (source,) = elements(html, "input", name="source")
    assert source["aria-invalid"] == "true"
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.outcome) == ("snapshot.create", "failure")


def kinds_offered(html: str) -> list[str]:
    assert elements(html, "select", name="kind")
    return [o["value"] for o in elements(html, "option") if "data-label" in o]


def test_the_engine_is_offered_only_the_sources_it_builds(daytona_engine, admin_client) -> None:
    html = admin_client.get(reverse("snapshot_create")).content.decode()
    assert kinds_offered(html) == ["dir", "tar", "image", "debian", "sandbox"]
    assert "Container image" in html
    assert "pulls no container images" not in html


def test_an_image_sent_to_the_engine_is_pulled_and_its_build_followed(
    daytona_engine, admin_client
) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    data = {"name": "pull-me", "kind": "image", "source": f"127.0.0.1:{closed}/x/y:1.0"}
    response = admin_client.post(reverse("snapshot_create"), data, headers=HX)
    created = engine_call(daytona_engine, "GET", "/snapshots/pull-me").json()
    assert response.headers["HX-Redirect"] == reverse("snapshot", args=[created["id"]])
    failed = wait_for_snapshot(daytona_engine, created["id"], "error", "active")
    assert "connection refused" in failed["errorReason"]
    engine_call(daytona_engine, "DELETE", f"/snapshots/{created['id']}")


def test_an_engine_without_image_tools_is_not_offered_images_and_says_why(
    daytona_engine, admin_client, monkeypatch
) -> None:
    # The engine's machine has skopeo and umoci; its answer without them is played here.
    real = daytona.engine_host

    async def without_images():
        host = await real()
        return msgspec.structs.replace(host, features=(("images", False), ("network", True)))

    monkeypatch.setattr(daytona, "engine_host", without_images)
    html = admin_client.get(reverse("snapshot_create")).content.decode()
    assert kinds_offered(html) == ["dir", "tar", "debian", "sandbox"]
    assert "lacks skopeo or umoci" in html
    data = {"name": "pull-me", "kind": "image", "source": "python:3.12-slim"}
    html = admin_client.post(reverse("snapshot_create"), data, headers=HX).content.decode()
    (kind,) = elements(html, "select", name="kind")
    assert kind["aria-invalid"] == "true"
    assert "pulls no container images" in text_of(html, kind["aria-describedby"])
    assert engine_call(daytona_engine, "GET", "/snapshots/pull-me").status_code == 404


@pytest.mark.parametrize(
    ("kind", "label", "words"),
    [
        ("tar", "Tarball", ".tar.gz"),
        ("debian", "Debian suite", "bookworm"),
        ("sandbox", "Sandbox", "started or stopped"),
    ],
)
def test_the_source_box_is_labelled_for_the_chosen_kind(
    daytona_engine, admin_client, kind, label, words
) -> None:
    data = {"name": "", "kind": kind, "source": ""}
    html = admin_client.post(reverse("snapshot_create"), data, headers=HX).content.decode()
    (source,) = elements(html, "input", name="source")
    assert text_of(html, "id_source_helptext") and words in text_of(html, "id_source_helptext")
    assert "id_source_helptext" in source["aria-describedby"].split()
    labels = [x for x in elements(html, "label", **{"for": "id_source"})]
    assert len(labels) == 1
    assert f">{label}</label>" in html


@pytest.fixture
def cloud_daytona(settings):
    """A Daytona that is not the embedded engine (no /sandbar/engine); a fake."""
    settings.DAYTONA_API_URL = "http://daytona.invalid/api"
    settings.DAYTONA_API_KEY = "k"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"message": "Cannot GET " + request.url.path})

    client.use_transport(httpx.MockTransport(handler))
    yield
    client.use_transport(None)


def test_daytona_is_offered_images_and_sandboxes(cloud_daytona, admin_client) -> None:
    html = admin_client.get(reverse("snapshot_create")).content.decode()
    assert kinds_offered(html) == ["image", "sandbox"]
    (chosen,) = elements(html, "option", value="image")
    assert "selected" in chosen
    assert "python:3.12-slim" in text_of(html, "id_source_helptext")


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
