"""Terminal and file sessions in the trail: who, which sandbox, when, how long, how many
bytes, never what was typed; filterable like any entry. Against the embedded engine."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient
from django.urls import reverse

from dashboard.audit.models import AuditEntry, Outcome
from tests.html_attrs import elements
from tests.terminal.conftest import make_sandbox, new_session, open_terminal  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "hunter2-typed-in-a-shell"


async def test_a_terminal_session_is_recorded_with_its_length_and_bytes_not_its_keys(
    make_sandbox,  # noqa: F811
    member_user,
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    term, connected = await open_terminal(member_user, sandbox["id"], new_session())
    assert connected
    await term.until_control("hello")
    typed = f"echo {SECRET}\r".encode()
    await term.keys(typed.decode())
    await term.until_output(SECRET.encode())
    await asyncio.sleep(0.3)
    await term.ws.disconnect()

    def entries() -> list[AuditEntry]:
        return list(AuditEntry.objects.filter(action__startswith="terminal.").order_by("seq"))

    for _ in range(150):  # the close is recorded as the consumer cleans up
        found = await database_sync_to_async(entries)()
        if [e.action for e in found] == ["terminal.open", "terminal.close"]:
            break
        await asyncio.sleep(0.1)
    assert [e.action for e in found] == ["terminal.open", "terminal.close"], found
    opened, closed = found
    assert opened.actor_name == closed.actor_name == "mel"
    assert closed.target_kind == "sandbox" and closed.target_id == sandbox["id"]
    assert closed.outcome == Outcome.SUCCESS
    assert closed.detail["bytes_in"] == len(typed)
    assert closed.detail["bytes_out"] >= len(SECRET)
    assert 0 < closed.detail["seconds"] < 60
    assert closed.detail["opened_at"][:16] == opened.created_at.isoformat()[:16]
    every = await database_sync_to_async(
        lambda: [json.dumps(e.detail) + e.error for e in AuditEntry.objects.all()]
    )()
    assert not [text for text in every if SECRET in text]


def test_a_download_is_recorded_with_its_bytes_time_and_user_agent(
    make_sandbox,  # noqa: F811
    member_client,
    member_user,
    admin_client,
) -> None:
    sandbox = make_sandbox(owner="mel")
    sid = sandbox["id"]
    payload = b"0123456789" * 30_000
    member_client.post(
        reverse("files_upload", args=[sid]),
        {"path": "/tmp", "files": [SimpleUploadedFile("out.bin", payload)]},
    )

    async def fetch() -> bytes:
        client = AsyncClient()
        await client.aforce_login(member_user)
        response = await client.get(
            reverse("files_download", args=[sid]),
            {"path": "/tmp/out.bin"},
            headers={"User-Agent": "AuditTest/1.0"},
        )
        return b"".join([chunk async for chunk in response.streaming_content])

    assert asyncio.run(fetch()) == payload
    entry = AuditEntry.objects.get(action="file.download")
    assert entry.actor_name == "mel" and entry.target_id == sid
    assert entry.detail["bytes"] == len(payload) and entry.detail["path"] == "/tmp/out.bin"
    assert entry.detail["seconds"] >= 0 and entry.outcome == Outcome.SUCCESS
    assert entry.user_agent == "AuditTest/1.0"
    upload = AuditEntry.objects.get(action="file.upload")
    assert upload.detail["bytes"] == len(payload)
    # Filterable like any entry: file transfers into this sandbox.
    html = admin_client.get(reverse("audit"), {"action": "file.", "target": sid}).content.decode()
    shown = {r["data-seq"] for r in elements(html, "tbody", **{"class": "audit-entry"})}
    assert shown == {str(entry.seq), str(upload.seq)}


def test_a_download_on_another_connection_is_recorded_on_that_connection(
    make_sandbox,  # noqa: F811
    daytona_engine,
    admin_user,
    admin_client,
) -> None:
    from dashboard.connections.models import Connection

    other = Connection(name="second", api_url=daytona_engine.api_url)
    other.set_secret(daytona_engine.api_key)
    other.save()
    sandbox = make_sandbox(owner="ada")
    sid = sandbox["id"]
    admin_client.post(
        reverse("files_upload", args=[sid]),
        {"path": "/tmp", "files": [SimpleUploadedFile("out.txt", b"hello")]},
    )

    async def fetch() -> bytes:
        client = AsyncClient()
        await client.aforce_login(admin_user)
        switched = await client.post(reverse("connection_switch"), {"connection": other.pk})
        assert switched.status_code == 302
        response = await client.get(reverse("files_download", args=[sid]), {"path": "/tmp/out.txt"})
        return b"".join([chunk async for chunk in response.streaming_content])

    assert asyncio.run(fetch()) == b"hello"
    # The body streams after the middleware has let go of the connection: the entry
    # must still name the one the download went through.
    assert AuditEntry.objects.get(action="file.download").connection == "second"
