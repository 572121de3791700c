"""The terminal's pages: full screen, and the list of a sandbox's shells (each can be closed)."""

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET, require_POST

from dashboard import daytona
from dashboard.accounts.access import terminal_access
from dashboard.accounts.models import Role
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record_request
from dashboard.core.http import arender
from dashboard.daytona import streams, toolbox
from dashboard.sandboxes.actions import find_sandbox
from dashboard.terminal.consumers import pty_id_for
from dashboard.terminal.models import Shell


@dataclass(frozen=True)
class ShellRow:
    session: str
    owner: str
    active: bool
    created_at: datetime | None
    mine: bool
    can_close: bool


async def _sandbox(user, sandbox_id: str) -> daytona.Sandbox:
    """The sandbox if `user` may use its terminals; 404 otherwise (no hint it exists)."""
    try:
        sandbox, _ = await find_sandbox(user, sandbox_id)
    except daytona.NotFound:
        raise Http404("No such sandbox.") from None
    if not terminal_access(user, sandbox.labels).act:
        raise Http404("No such sandbox.")
    return sandbox


def _rows(user, sandbox_id: str, ptys: list[toolbox.PtyInfo]) -> list[ShellRow]:
    live = {p.id: p for p in ptys}
    shells = Shell.objects.filter(sandbox_id=sandbox_id, ended_at__isnull=True).select_related(
        "owner"
    )
    rows = []
    for shell in shells:
        pty = live.get(shell.pty_id)
        if pty is None or not pty.active:
            continue
        mine = shell.owner_id == user.pk
        rows.append(
            ShellRow(
                session=shell.pty_id.removeprefix("sandbar-"),
                owner=shell.owner.get_username(),
                active=pty.active,
                created_at=shell.created_at,
                mine=mine,
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
    context["shells"] = await sync_to_async(_rows)(user, sandbox.id, ptys)
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
