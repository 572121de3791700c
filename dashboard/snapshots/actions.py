"""Everything done to a snapshot: check access, ask Daytona, write the audit entry.

Each `do_<verb>_snapshot` raises PermissionDenied when the person may not act
(after recording the refusal) and the client's DaytonaError when Daytona
refuses or fails (after recording the failure).
"""

from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from dashboard import daytona
from dashboard.accounts.access import snapshot_access
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record_request

ADMINS_ONLY = "Only admins manage snapshots."
VERBS = ("activate", "deactivate", "delete")


def applies(verb: str, snapshot: daytona.Snapshot) -> bool:
    """Whether `verb` makes sense for the snapshot now (Daytona refuses otherwise)."""
    if snapshot.general:
        # The shared system snapshot is Daytona's, not the organization's.
        return False
    if verb == "activate":
        return snapshot.state == "inactive"
    if verb == "deactivate":
        return snapshot.state == "active"
    return snapshot.state != "removing"


async def _audit(
    request: HttpRequest,
    action: str,
    *,
    target_id: str = "",
    target_name: str = "",
    outcome: str = Outcome.SUCCESS,
    error: str = "",
    detail: dict | None = None,
) -> None:
    await sync_to_async(record_request)(
        request,
        action,
        target_kind="snapshot",
        target_id=target_id,
        target_name=target_name,
        outcome=outcome,
        error=error,
        detail=detail,
    )


async def _guarded[T](
    request: HttpRequest,
    action: str,
    call: Callable[[], Awaitable[T]],
    *,
    target_id: str = "",
    target_name: str = "",
    detail: dict | None = None,
) -> T:
    """Refuse non-admins, run `call`, and record the outcome either way."""
    user = await request.auser()
    names = {"target_id": target_id, "target_name": target_name, "detail": detail}
    if not snapshot_access(user).act:
        await _audit(request, action, outcome=Outcome.DENIED, error=ADMINS_ONLY, **names)
        raise PermissionDenied(ADMINS_ONLY)
    try:
        result = await call()
    except daytona.DaytonaError as error:
        await _audit(request, action, outcome=Outcome.FAILURE, error=error.message, **names)
        raise
    if isinstance(result, daytona.Snapshot):
        names |= {"target_id": result.id, "target_name": result.name}
    await _audit(request, action, **names)
    return result


async def refuse(request: HttpRequest, action: str, snapshot_id: str) -> None:
    """Record that a non-admin tried `action`, and refuse it before Daytona is asked."""
    await _audit(request, action, target_id=snapshot_id, outcome=Outcome.DENIED, error=ADMINS_ONLY)
    raise PermissionDenied(ADMINS_ONLY)


async def do_create_snapshot(request: HttpRequest, data: dict) -> daytona.Snapshot:
    """Create a snapshot from an image or engine source, or from a sandbox's files."""
    name = data["name"]
    detail = {"source": data["image_name"] or f"sandbox {data['sandbox']}"}

    async def create() -> daytona.Snapshot:
        if data["sandbox"]:
            await daytona.snapshot_sandbox(data["sandbox"], name)
            # Daytona answers with the sandbox; the snapshot it started is found by name.
            return await daytona.get_snapshot(name)
        return await daytona.create_snapshot(
            name=name,
            image_name=data["image_name"],
            cpu=data["cpu"],
            memory=data["memory"],
            disk=data["disk"],
            entrypoint=data["entrypoint"],
        )

    return await _guarded(request, "snapshot.create", create, target_name=name, detail=detail)


async def do_snapshot_action(
    request: HttpRequest, snapshot: daytona.Snapshot, verb: str
) -> daytona.Snapshot | None:
    """Activate, deactivate or delete one snapshot (None once deleted)."""
    calls: dict[str, Callable[[str], Awaitable[daytona.Snapshot | None]]] = {
        "activate": daytona.activate_snapshot,
        "deactivate": daytona.deactivate_snapshot,
        "delete": daytona.delete_snapshot,
    }
    call = calls[verb]
    return await _guarded(
        request,
        f"snapshot.{verb}",
        lambda: call(snapshot.id),
        target_id=snapshot.id,
        target_name=snapshot.name,
    )
