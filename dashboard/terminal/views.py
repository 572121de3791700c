"""The terminal's pages: full screen, and the list of a sandbox's shells (each can be closed)."""

import asyncio
import contextvars
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard import daytona
from dashboard.accounts.access import terminal_access
from dashboard.accounts.models import Role
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record_request
from dashboard.core.http import arender
from dashboard.daytona import streams, toolbox
from dashboard.sandboxes.actions import find_sandbox
from dashboard.terminal import consumers
from dashboard.terminal.consumers import SESSION_ID, pty_id_for
from dashboard.terminal.models import Shell

log = logging.getLogger(__name__)

# How long a shell outlives its tab: a reload comes back well within it and keeps it.
LEAVE_GRACE_SECONDS = 15.0
# Closes waiting out their grace period (held so the tasks are not collected midway).
_pending_closes: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class ShellRow:
    session: str
    name: str
    title: str
    owner: str
    active: bool
    created_at: datetime | None
    idle: timedelta
    # Since when it is idle: the page counts on from here without asking again.
    idle_since: datetime
    mine: bool
    this_tab: bool
    can_close: bool

    @property
    def idle_minutes(self) -> int:
        return int(self.idle.total_seconds() // 60)


async def _sandbox(user, sandbox_id: str) -> daytona.Sandbox:
    """The sandbox if `user` may use its terminals; 404 otherwise (no hint it exists)."""
    try:
        sandbox, _ = await find_sandbox(user, sandbox_id)
    except daytona.NotFound:
        raise Http404("No such sandbox.") from None
    if not terminal_access(user, sandbox.labels).act:
        raise Http404("No such sandbox.")
    return sandbox


def _rows(user, sandbox_id: str, ptys: list[toolbox.PtyInfo], this_tab: str) -> list[ShellRow]:
    live = {p.id: p for p in ptys}
    now = timezone.now()
    shells = Shell.objects.filter(sandbox_id=sandbox_id, ended_at__isnull=True).select_related(
        "owner"
    )
    rows = []
    for shell in shells:
        pty = live.get(shell.pty_id)
        if pty is None or not pty.active:
            continue
        mine = shell.owner_id == user.pk
        session = shell.pty_id.removeprefix("sandbar-")
        rows.append(
            ShellRow(
                session=session,
                name=shell.name,
                title=shell.title,
                owner=shell.owner.get_username(),
                active=pty.active,
                created_at=shell.created_at,
                idle=max(timedelta(0), now - (shell.last_input_at or shell.created_at)),
                idle_since=shell.last_input_at or shell.created_at,
                mine=mine,
                this_tab=mine and session == this_tab,
                can_close=mine or user.role == Role.ADMIN,
            )
        )
    return rows


async def _shells_context(request: HttpRequest, sandbox: daytona.Sandbox) -> dict:
    user = await request.auser()
    context: dict = {"sandbox": sandbox, "shells": [], "shells_error": ""}
    if sandbox.state != "started":
        return context
    try:
        ptys = await toolbox.list_ptys(sandbox)
    except daytona.DaytonaError as error:
        context["shells_error"] = error.message
        return context
    # The session of the tab asking (terminal.js adds it): its row says "this tab".
    this_tab = request.GET.get("this") or request.POST.get("this") or ""
    if not re.fullmatch(SESSION_ID, this_tab):
        this_tab = ""
    rows = await sync_to_async(_rows)(user, sandbox.id, ptys, this_tab)
    context["shells"] = rows
    context["mine"] = sum(1 for row in rows if row.mine)
    return context


@require_GET
async def terminal_page(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """The terminal on its own page, as large as the window."""
    user = await request.auser()
    try:
        sandbox, _ = await find_sandbox(user, sandbox_id)
    except daytona.NotFound:
        raise Http404("No such sandbox.") from None
    except daytona.DaytonaError as error:
        context = {"error": error.message, "sandbox_id": sandbox_id}
        return await arender(request, "sandboxes/unavailable.html", context, 503)
    context = {"sandbox": sandbox, "can_terminal": terminal_access(user, sandbox.labels).act}
    # A link to the person's own shell (the tab's "Own page"): if that shell is gone (the
    # sandbox restarted), terminal.js opens a new one rather than showing it ended.
    session = request.GET.get("session", "")
    if re.fullmatch(SESSION_ID, session):
        mine = Shell.objects.filter(pty_id=pty_id_for(session), owner_id=user.pk)
        context["own_session"] = await mine.aexists()
    return await arender(request, "terminal/full.html", context)


@require_GET
async def shells(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """The sandbox's open shells (HTMX fragment)."""
    sandbox = await _sandbox(await request.auser(), sandbox_id)
    return await arender(request, "terminal/_shells.html", await _shells_context(request, sandbox))


@require_POST
async def close_shell(request: HttpRequest, sandbox_id: str, session: str) -> HttpResponse:
    """Kill one shell (its owner or an admin); everyone attached sees it exit."""
    user = await request.auser()
    sandbox = await _sandbox(user, sandbox_id)
    pty_id = pty_id_for(session)
    shell = await Shell.objects.filter(pty_id=pty_id, sandbox_id=sandbox.id).afirst()
    if shell is None:
        raise Http404("No such shell.")
    context_error = ""
    detail = {"session": session}
    if shell.owner_id != user.pk and user.role != Role.ADMIN:
        await sync_to_async(record_request)(
            request, "terminal.kill", target_kind="sandbox", target_id=sandbox.id,
            target_name=sandbox.name, outcome=Outcome.DENIED, detail=detail,
        )  # fmt: skip
        context_error = "Only the shell's owner or an admin may close it."
    else:
        try:
            await toolbox.kill_pty(sandbox, pty_id)
        except daytona.NotFound:
            pass  # already gone: the list shows that
        except daytona.DaytonaError as error:
            context_error = error.message
        await sync_to_async(record_request)(
            request, "terminal.kill", target_kind="sandbox", target_id=sandbox.id,
            target_name=sandbox.name, detail=detail,
            outcome=Outcome.FAILURE if context_error else Outcome.SUCCESS, error=context_error,
        )  # fmt: skip
    context = await _shells_context(request, sandbox)
    context["shells_error"] = context_error or context["shells_error"]
    return await arender(request, "terminal/_shells.html", context)


@require_POST
async def close_mine(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Kill every shell the signed-in person has open in the sandbox."""
    user = await request.auser()
    sandbox = await _sandbox(user, sandbox_id)
    mine = [
        pty_id
        async for pty_id in Shell.objects.filter(
            sandbox_id=sandbox.id, owner_id=user.pk, ended_at__isnull=True
        ).values_list("pty_id", flat=True)
    ]
    failed = ""
    for pty_id in mine:
        try:
            await toolbox.kill_pty(sandbox, pty_id)
        except daytona.NotFound:
            pass  # already gone
        except daytona.DaytonaError as error:
            failed = error.message
    await sync_to_async(record_request)(
        request, "terminal.kill", target_kind="sandbox", target_id=sandbox.id,
        target_name=sandbox.name, detail={"sessions": len(mine), "all_mine": True},
        outcome=Outcome.FAILURE if failed else Outcome.SUCCESS, error=failed,
    )  # fmt: skip
    context = await _shells_context(request, sandbox)
    context["shells_error"] = failed or context["shells_error"]
    return await arender(request, "terminal/_shells.html", context)


@require_POST
async def leave_shell(request: HttpRequest, sandbox_id: str, session: str) -> HttpResponse:
    """The owner's tab closed: close the shell after a grace period, unless a tab
    (a reload, another one) is attached by then. Sent as the page goes (a keepalive
    fetch), so the answer is empty."""
    user = await request.auser()
    sandbox = await _sandbox(user, sandbox_id)
    pty_id = pty_id_for(session)
    now = timezone.now()
    left = await Shell.objects.filter(
        pty_id=pty_id, sandbox_id=sandbox.id, owner_id=user.pk, ended_at__isnull=True
    ).aupdate(left_at=now)
    if not left:
        raise Http404("No such shell of yours.")
    # A context of its own: the task outlives this request, and the database work in it
    # must not be tied to the request's thread (gone by then under a sync caller).
    # Only the request's Daytona connection is carried over: the shell lives there.
    context = contextvars.Context()
    context.run(daytona.client.use_target, daytona.client.current_target())
    closing = _close_if_still_left(sandbox, pty_id, now)
    task = asyncio.create_task(closing, context=context)
    _pending_closes.add(task)
    task.add_done_callback(_pending_closes.discard)
    return HttpResponse(status=204)


async def _close_if_still_left(sandbox: daytona.Sandbox, pty_id: str, left_at: datetime) -> None:
    await asyncio.sleep(LEAVE_GRACE_SECONDS)
    if consumers.attached[pty_id] > 0 or await consumers.tabs.count(pty_id) != 0:
        return  # attached here or in another worker (None: unknown, so it stays)
    if not await Shell.objects.filter(pty_id=pty_id, left_at=left_at).aexists():
        return  # a tab came back meanwhile (and maybe left again: that one decides)
    try:
        await toolbox.kill_pty(sandbox, pty_id)
    except daytona.NotFound:
        pass
    except daytona.DaytonaError as error:
        log.info("closing a left shell failed: %s", error.message)
        return
    await Shell.objects.filter(pty_id=pty_id, ended_at__isnull=True).aupdate(
        ended_at=timezone.now()
    )


@require_GET
async def commands(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """The commands run in the sandbox's sessions, newest first (HTMX fragment)."""
    sandbox = await _sandbox(await request.auser(), sandbox_id)
    context: dict = {"sandbox": sandbox, "commands": [], "commands_error": ""}
    if sandbox.state == "started":
        try:
            sessions = await toolbox.list_sessions(sandbox)
        except daytona.DaytonaError as error:
            context["commands_error"] = error.message
        else:
            context["commands"] = [
                {"session": s.id, "id": c.id, "text": c.command, "exit_code": c.exit_code}
                for s in sessions
                for c in reversed(s.commands)
            ][:100]
    return await arender(request, "terminal/_commands.html", context)


@require_GET
async def download_log(
    request: HttpRequest, sandbox_id: str, session: str, command: str
) -> HttpResponse:
    """A command's full log as text, streamed from the sandbox in constant memory."""
    sandbox = await _sandbox(await request.auser(), sandbox_id)
    pieces = streams.follow_command(sandbox, session, command, follow=False)
    try:
        first = await anext(pieces)
    except StopAsyncIteration:
        first = None
    except daytona.NotFound:
        raise Http404("No such command.") from None
    except daytona.DaytonaError as error:
        return HttpResponse(error.message, status=503, content_type="text/plain")

    async def body() -> AsyncIterator[bytes]:
        if first is not None:
            yield first[1]
        async for _, data in pieces:
            yield data

    response = StreamingHttpResponse(body(), content_type="text/plain; charset=utf-8")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{sandbox.name}-{command}")[:120]
    response["Content-Disposition"] = f'attachment; filename="{name}.log"'
    return response
