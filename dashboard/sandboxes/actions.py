"""Everything done to a sandbox: check access, ask Daytona, write the audit entry with the outcome.

Each `do_<verb>_sandbox` raises Http404 when the person may not know the
sandbox, PermissionDenied when they may look but not act, and the client's
DaytonaError (NotFound when it vanished) when Daytona refuses or fails.
"""

import asyncio
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from dashboard import daytona
from dashboard.accounts.access import Access, sandbox_access
from dashboard.accounts.actions import active_connection
from dashboard.accounts.quotas import Footprint, limits_anything, quota_on, quota_problem
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record_request
from dashboard.core.bulk import BulkResult
from dashboard.daytona.labels import OWNER_LABEL

NOT_YOURS = "Only its owner or an admin may change this sandbox."

# Which states each action applies to (Daytona answers 400 or 409 otherwise).
VALID_FROM = {
    "start": {"stopped", "archived", "paused"},
    "stop": {"started"},
    "archive": {"stopped"},
    "recover": {"error"},
}
_CALLS: dict[str, Callable[[str], Awaitable[daytona.Sandbox | None]]] = {
    "start": daytona.start_sandbox,
    "stop": daytona.stop_sandbox,
    "archive": daytona.archive_sandbox,
    "recover": daytona.recover_sandbox,
    "delete": daytona.delete_sandbox,
}
BULK_CONCURRENCY = 5
# What Daytona gives a sandbox when the request names no resources.
DEFAULT_FOOTPRINT = (1, 1, 3)


class PersonalQuotaExceeded(daytona.QuotaExceeded):
    """The person's own quota (set by an admin in Sandbar), not Daytona's, says no."""


async def _check_quota(
    request: HttpRequest, user, adding: Footprint, *, new: bool, exclude: str = ""
) -> None:
    """Refuse before asking Daytona when the person's quota on the connection in use
    (where the sandboxes below are counted) would be exceeded."""
    connection_id, _ = active_connection(request)
    quota = await sync_to_async(quota_on)(user, connection_id)
    if not limits_anything(quota):
        return
    query = daytona.SandboxQuery(labels={OWNER_LABEL: user.get_username()})
    owned = [
        Footprint(s.state, s.cpu, s.memory, s.disk)
        for s in await daytona.list_all_sandboxes(query)
        if s.id != exclude
    ]
    problem = quota_problem(user, quota, owned, adding, new=new)
    if problem:
        raise PersonalQuotaExceeded(problem)


def applies(verb: str, sandbox: daytona.Sandbox) -> bool:
    """Whether `verb` makes sense for the sandbox in its current state."""
    if sandbox.gone or sandbox.state == "destroying":
        return False
    if verb == "delete":
        return True
    if sandbox.transitional:
        return False
    if verb == "recover":
        return sandbox.state == "error" and sandbox.recoverable
    return sandbox.state in VALID_FROM.get(verb, ())


async def _audit(
    request: HttpRequest,
    action: str,
    sandbox: daytona.Sandbox | None,
    *,
    outcome: str = Outcome.SUCCESS,
    error: str = "",
    detail: dict | None = None,
    target_id: str = "",
) -> None:
    await sync_to_async(record_request)(
        request,
        action,
        target_kind="sandbox",
        target_id=sandbox.id if sandbox else target_id,
        target_name=sandbox.name if sandbox else "",
        outcome=outcome,
        error=error,
        detail=detail,
    )


async def find_sandbox(user, sandbox_id: str) -> tuple[daytona.Sandbox, Access]:
    """The sandbox and what `user` may do with it; Http404 if they may not even see it."""
    sandbox = await daytona.get_sandbox(sandbox_id)
    access = sandbox_access(user, sandbox.labels)
    if not access.see:
        raise Http404("No such sandbox.")
    return sandbox, access


async def _change(
    request: HttpRequest,
    sandbox_id: str,
    action: str,
    call: Callable[[daytona.Sandbox], Awaitable[daytona.Sandbox | None]],
    detail: dict | None = None,
    footprint: Callable[[daytona.Sandbox], Footprint] | None = None,
) -> daytona.Sandbox:
    user = await request.auser()
    sandbox, access = await find_sandbox(user, sandbox_id)
    if not access.act:
        await _audit(request, action, sandbox, outcome=Outcome.DENIED, error=NOT_YOURS)
        raise PermissionDenied(NOT_YOURS)
    if action == "sandbox.start":
        footprint = lambda s: Footprint("starting", s.cpu, s.memory, s.disk)  # noqa: E731
    if footprint is not None:
        adding = footprint(sandbox)
        try:
            await _check_quota(request, user, adding, new=False, exclude=sandbox.id)
        except PersonalQuotaExceeded as refused:
            await _audit(request, action, sandbox, outcome=Outcome.DENIED, error=refused.message)
            raise
    try:
        result = await call(sandbox)
    except daytona.DaytonaError as error:
        await _audit(
            request, action, sandbox, outcome=Outcome.FAILURE, error=error.message, detail=detail
        )
        raise
    await _audit(request, action, sandbox, detail=detail)
    return result or sandbox


async def do_action(request: HttpRequest, sandbox_id: str, verb: str) -> daytona.Sandbox:
    """Run one lifecycle action (start, stop, archive, recover, delete)."""
    call = _CALLS[verb]
    return await _change(request, sandbox_id, f"sandbox.{verb}", lambda s: call(s.id))


async def do_start_sandbox(request: HttpRequest, sandbox_id: str) -> daytona.Sandbox:
    return await do_action(request, sandbox_id, "start")


async def do_stop_sandbox(request: HttpRequest, sandbox_id: str) -> daytona.Sandbox:
    return await do_action(request, sandbox_id, "stop")


async def do_archive_sandbox(request: HttpRequest, sandbox_id: str) -> daytona.Sandbox:
    return await do_action(request, sandbox_id, "archive")


async def do_recover_sandbox(request: HttpRequest, sandbox_id: str) -> daytona.Sandbox:
    return await do_action(request, sandbox_id, "recover")


async def do_delete_sandbox(request: HttpRequest, sandbox_id: str) -> daytona.Sandbox:
    return await do_action(request, sandbox_id, "delete")


async def do_bulk_action(
    request: HttpRequest, verb: str, sandboxes: list[daytona.Sandbox]
) -> list[BulkResult]:
    """Run `verb` on each sandbox, a few at a time; one failing does not stop the others."""
    gate = asyncio.Semaphore(BULK_CONCURRENCY)

    async def one(sandbox: daytona.Sandbox) -> BulkResult:
        async with gate:
            return await do_bulk_item(request, verb, sandbox.id, sandbox.name)

    return list(await asyncio.gather(*(one(s) for s in sandboxes)))


async def do_bulk_item(request: HttpRequest, verb: str, sandbox_id: str, name: str) -> BulkResult:
    """One sandbox of a bulk action, audited on its own; a refusal is a result, not an error."""
    try:
        await do_action(request, sandbox_id, verb)
    except daytona.NotFound:
        return BulkResult(name, False, "It no longer exists.", id=sandbox_id)
    except daytona.DaytonaError as error:
        return BulkResult(name, False, error.message, id=sandbox_id)
    except PermissionDenied:
        return BulkResult(name, False, NOT_YOURS, id=sandbox_id)
    except Http404:
        return BulkResult(name, False, "It no longer exists.", id=sandbox_id)
    return BulkResult(name, True, id=sandbox_id)


async def do_create_sandbox(request: HttpRequest, data: dict) -> daytona.Sandbox:
    """Create a sandbox owned by the person asking, from the create form's cleaned data."""
    user = await request.auser()
    if not sandbox_access(user).act:
        await _audit(request, "sandbox.create", None, outcome=Outcome.DENIED)
        raise PermissionDenied("Viewers cannot create sandboxes.")
    labels = {**data["labels"], OWNER_LABEL: user.get_username()}
    detail = {
        k: data.get(k)
        for k in ("name", "snapshot", "cpu", "memory", "disk", "auto_stop", "auto_delete")
    }
    cpu, memory, disk = DEFAULT_FOOTPRINT
    adding = Footprint(
        "creating", data["cpu"] or cpu, data["memory"] or memory, data["disk"] or disk
    )
    try:
        await _check_quota(request, user, adding, new=True)
    except PersonalQuotaExceeded as refused:
        await _audit(
            request,
            "sandbox.create",
            None,
            outcome=Outcome.DENIED,
            error=refused.message,
            detail=detail,
            target_id=data["name"] or "",
        )
        raise
    try:
        sandbox = await daytona.create_sandbox(
            name=data["name"] or None,
            snapshot=data["snapshot"] or None,
            env=data["env"],
            labels=labels,
            cpu=data["cpu"],
            memory=data["memory"],
            disk=data["disk"],
            public=data["public"],
            network_block_all=data["network_block_all"],
            auto_stop_interval=data["auto_stop"],
            auto_archive_interval=data["auto_archive"],
            auto_delete_interval=data["auto_delete"],
            volumes=data["volumes"],
        )
    except daytona.DaytonaError as error:
        await _audit(
            request,
            "sandbox.create",
            None,
            outcome=Outcome.FAILURE,
            error=error.message,
            detail=detail,
            target_id=data["name"] or "",
        )
        raise
    await _audit(request, "sandbox.create", sandbox, detail=detail)
    return sandbox


async def do_set_labels(
    request: HttpRequest, sandbox_id: str, labels: dict[str, str]
) -> daytona.Sandbox:
    """Replace a sandbox's labels, keeping its owner label as it was."""

    async def call(sandbox: daytona.Sandbox) -> daytona.Sandbox:
        kept = {OWNER_LABEL: sandbox.owner} if sandbox.owner else {}
        return await daytona.replace_labels(sandbox.id, {**labels, **kept})

    return await _change(request, sandbox_id, "sandbox.labels", call, {"labels": labels})


async def do_set_lifecycle(
    request: HttpRequest,
    sandbox_id: str,
    *,
    auto_stop: int | None,
    auto_archive: int | None,
    auto_delete: int | None,
) -> daytona.Sandbox:
    """Set the auto-stop, auto-archive and auto-delete intervals that changed."""

    async def call(sandbox: daytona.Sandbox) -> daytona.Sandbox:
        result = sandbox
        stop = 0 if auto_stop is None else auto_stop
        archive = 0 if auto_archive is None else auto_archive
        delete = -1 if auto_delete is None else auto_delete
        if stop != sandbox.auto_stop_interval:
            result = await daytona.set_auto_stop(sandbox.id, stop)
        if archive != sandbox.auto_archive_interval:
            result = await daytona.set_auto_archive(sandbox.id, archive)
        if delete != (
            sandbox.auto_delete_interval if sandbox.auto_delete_interval is not None else -1
        ):
            result = await daytona.set_auto_delete(sandbox.id, delete)
        return result

    detail = {"auto_stop": auto_stop, "auto_archive": auto_archive, "auto_delete": auto_delete}
    return await _change(request, sandbox_id, "sandbox.settings", call, detail)


async def do_set_network(
    request: HttpRequest,
    sandbox_id: str,
    *,
    public: bool,
    network_block_all: bool,
    network_allow_list: str,
) -> daytona.Sandbox:
    """Set public previews and network access, calling Daytona only for what changed."""

    async def call(sandbox: daytona.Sandbox) -> daytona.Sandbox:
        result = sandbox
        if public != sandbox.public:
            result = await daytona.set_public(sandbox.id, public)
        if (
            network_block_all != sandbox.network_block_all
            or network_allow_list != sandbox.network_allow_list
        ):
            result = await daytona.set_network_settings(
                sandbox.id,
                network_block_all=network_block_all,
                network_allow_list=network_allow_list,
            )
        return result

    detail = {
        "public": public,
        "network_block_all": network_block_all,
        "network_allow_list": network_allow_list,
    }
    return await _change(request, sandbox_id, "sandbox.settings", call, detail)


async def do_resize_sandbox(
    request: HttpRequest,
    sandbox_id: str,
    *,
    cpu: int | None,
    memory: int | None,
    disk: int | None,
) -> daytona.Sandbox:
    """Change CPU, memory and disk, sending Daytona only what changed (it decides what may:
    on Daytona disk only grows, and only while the sandbox is stopped)."""

    def changed(sandbox: daytona.Sandbox) -> dict[str, int]:
        wanted = {"cpu": cpu, "memory": memory, "disk": disk}
        return {k: v for k, v in wanted.items() if v is not None and v != getattr(sandbox, k)}

    def footprint(sandbox: daytona.Sandbox) -> Footprint:
        new = {"cpu": sandbox.cpu, "memory": sandbox.memory, "disk": sandbox.disk}
        new |= changed(sandbox)
        return Footprint(sandbox.state, new["cpu"], new["memory"], new["disk"])

    async def call(sandbox: daytona.Sandbox) -> daytona.Sandbox:
        change = changed(sandbox)
        if not change:
            return sandbox
        return await daytona.resize_sandbox(sandbox.id, **change)

    detail = {"cpu": cpu, "memory": memory, "disk": disk}
    return await _change(request, sandbox_id, "sandbox.resize", call, detail, footprint)
