"""The logs tab's pages: earlier commands and the full-log download."""

import asyncio
import json

import pytest
from django.test import AsyncClient
from django.urls import reverse

from tests.terminal.test_logs_consumer import collect, open_logs

pytestmark = pytest.mark.django_db(transaction=True)


async def run(user, sandbox_id: str, command: str) -> dict:
    ws = await open_logs(user, sandbox_id)
    await ws.send_to(text_data=json.dumps({"type": "run", "command": command}))
    messages = await collect(ws, limit=60)
    await ws.disconnect()
    return messages[0]


async def test_the_full_log_downloads_as_a_stream(make_sandbox, member_user) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    started = await run(member_user, sandbox["id"], "seq 1 50000; echo bad >&2")
    client = AsyncClient()
    await client.aforce_login(member_user)
    url = reverse("terminal_log", args=[sandbox["id"], started["session"], started["command"]])
    response = await client.get(url)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"].startswith("attachment;")
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body == "".join(f"{i}\n" for i in range(1, 50001)).encode() + b"bad\n"
    missing = reverse("terminal_log", args=[sandbox["id"], started["session"], "nope"])
    assert (await client.get(missing)).status_code == 404


async def test_earlier_commands_are_listed_for_the_owner_only(
    make_sandbox, member_user, other_member
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    await run(member_user, sandbox["id"], "echo listed-command")
    client = AsyncClient()
    await client.aforce_login(member_user)
    html = (await client.get(reverse("terminal_commands", args=[sandbox["id"]]))).content.decode()
    assert "echo listed-command" in html and "data-logs-follow" in html
    other = AsyncClient()
    await other.aforce_login(other_member)
    assert (await other.get(reverse("terminal_commands", args=[sandbox["id"]]))).status_code == 404


def test_the_logs_tab_holds_the_viewer(make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel")
    body = member_client.get(reverse("sandbox", args=[sandbox["id"]]), {"tab": "logs"})
    assert "data-logs" in body.content.decode() and "js/logs.js" in body.content.decode()
