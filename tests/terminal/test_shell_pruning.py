"""Old shell records are pruned: ended ones after 30 days, and past 50 per sandbox."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from dashboard.terminal.models import (
    ENDED_SHELLS_KEPT_PER_SANDBOX,
    Shell,
    prune_shells,
)
from tests.terminal.conftest import new_session, open_terminal


def _shell(owner, sandbox_id: str, *, ended_days_ago: float | None, created_days_ago: float = 0):
    now = timezone.now()
    shell = Shell.objects.create(
        pty_id=f"sandbar-{uuid.uuid4().hex}",
        sandbox_id=sandbox_id,
        owner=owner,
        ended_at=None if ended_days_ago is None else now - timedelta(days=ended_days_ago),
    )
    # auto_now_add ignores a value given to create(): set it afterwards.
    Shell.objects.filter(pk=shell.pk).update(created_at=now - timedelta(days=created_days_ago))
    return shell


@pytest.mark.django_db
def test_ended_shells_older_than_30_days_go_open_ones_stay(member_user) -> None:
    old = _shell(member_user, "box-a", ended_days_ago=31, created_days_ago=31)
    elsewhere = _shell(member_user, "box-b", ended_days_ago=45, created_days_ago=45)
    recent = _shell(member_user, "box-a", ended_days_ago=29, created_days_ago=29)
    open_old = _shell(member_user, "box-a", ended_days_ago=None, created_days_ago=90)
    assert prune_shells("box-a") == 2
    left = set(Shell.objects.values_list("pk", flat=True))
    assert left == {recent.pk, open_old.pk}
    assert old.pk not in left and elsewhere.pk not in left


@pytest.mark.django_db
def test_a_sandbox_keeps_only_its_newest_ended_shells(member_user) -> None:
    extra = 5
    shells = [
        _shell(member_user, "box-a", ended_days_ago=1 + i / 100)
        for i in range(ENDED_SHELLS_KEPT_PER_SANDBOX + extra)
    ]  # shells[0] ended last
    still_open = [_shell(member_user, "box-a", ended_days_ago=None) for _ in range(3)]
    other_box = [_shell(member_user, "box-b", ended_days_ago=2) for _ in range(3)]
    assert prune_shells("box-a") == extra
    left = set(Shell.objects.values_list("pk", flat=True))
    assert {s.pk for s in shells[:ENDED_SHELLS_KEPT_PER_SANDBOX]} <= left
    assert not {s.pk for s in shells[ENDED_SHELLS_KEPT_PER_SANDBOX:]} & left
    assert {s.pk for s in still_open + other_box} <= left
    assert prune_shells("box-a") == 0


@pytest.mark.django_db(transaction=True)
async def test_starting_a_shell_prunes_the_old_records(make_sandbox, member_user) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    old = await database_sync_to_async(_shell)(
        member_user, sandbox["id"], ended_days_ago=40, created_days_ago=40
    )
    term, connected = await open_terminal(member_user, sandbox["id"], new_session())
    assert connected
    await term.until_control("hello")
    await term.ws.disconnect()
    assert not await Shell.objects.filter(pk=old.pk).aexists()
    assert await Shell.objects.filter(sandbox_id=sandbox["id"]).acount() == 1
