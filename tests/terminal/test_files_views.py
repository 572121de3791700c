"""The files tab against the embedded engine: browse, download, upload, folders, delete, move."""

import asyncio

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient
from django.urls import reverse

from dashboard.audit.models import AuditEntry
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sandbox(make_sandbox):
    return make_sandbox(owner="mel")


def test_the_files_tab_shows_the_home_folder(sandbox, member_client) -> None:
    tab = member_client.get(reverse("sandbox", args=[sandbox["id"]]), {"tab": "files"})
    assert "data-files" in tab.content.decode()
    listing = member_client.get(reverse("files", args=[sandbox["id"]]), **HX)
    assert listing.status_code == 200
    assert "Drop files here" in listing.content.decode()


def test_upload_mkdir_move_download_and_delete(sandbox, member_client, member_user) -> None:
    sid = sandbox["id"]
    home = member_client.get(reverse("files", args=[sid])).context["path"]
    made = member_client.post(reverse("files_folder", args=[sid]), {"path": home, "name": "work"})
    assert f"Created {home}/work." in made.content.decode()
    folder = f"{home}/work"
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    uploaded = member_client.post(
        reverse("files_upload", args=[sid]),
        {"path": folder, "files": [SimpleUploadedFile("data.bin", payload)]},
    )
    assert "Uploaded 1 file." in uploaded.content.decode()
    assert "data.bin" in uploaded.content.decode()
    moved = member_client.post(
        reverse("files_move", args=[sid]),
        {"path": folder, "name": "data.bin", "destination": "renamed.bin"},
    )
    assert "renamed.bin</td>" in moved.content.decode()
    assert "data.bin</td>" not in moved.content.decode()

    async def fetch() -> bytes:
        client = AsyncClient()
        await client.aforce_login(member_user)
        response = await client.get(
            reverse("files_download", args=[sid]), {"path": f"{folder}/renamed.bin"}
        )
        assert response.status_code == 200
        return b"".join([chunk async for chunk in response.streaming_content])

    assert asyncio.run(fetch()) == payload
    deleted = member_client.post(
        reverse("files_delete", args=[sid]), {"path": folder, "name": "renamed.bin"}
    )
    assert "This folder is empty" in deleted.content.decode()
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"file.mkdir", "file.upload", "file.move", "file.delete"} <= actions


@pytest.mark.parametrize(
    ("url", "data", "message"),
    [
        ("files_folder", {"path": "/tmp", "name": "../escape"}, "no slashes"),
        ("files_folder", {"path": "relative", "name": "x"}, "start with /"),
        ("files_delete", {"path": "/tmp", "name": ".."}, "no slashes"),
        ("files_move", {"path": "/tmp", "name": "a", "destination": ""}, "Where to?"),
        ("files_upload", {"path": "/tmp"}, "Choose files"),
    ],
)
def test_bad_paths_and_names_get_a_clear_message(sandbox, member_client, url, data, message):
    response = member_client.post(reverse(url, args=[sandbox["id"]]), data)
    assert response.status_code in (200, 400)
    assert message in response.content.decode()


def test_a_missing_folder_or_file_says_so(sandbox, member_client) -> None:
    listing = member_client.get(reverse("files", args=[sandbox["id"]]), {"path": "/nope/deeper"})
    assert "does not exist" in listing.content.decode()
    download = reverse("files_download", args=[sandbox["id"]])
    assert member_client.get(download, {"path": "relative"}).status_code == 400


def test_files_are_only_for_the_owner_and_admins(sandbox, other_member, viewer_user, admin_client):
    for person in (other_member, viewer_user):
        assert client_for(person).get(reverse("files", args=[sandbox["id"]])).status_code == 404
    assert admin_client.get(reverse("files", args=[sandbox["id"]])).status_code == 200
