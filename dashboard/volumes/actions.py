"""Everything done to a volume: check access, ask Daytona, write the audit entry."""

from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from dashboard import daytona
from dashboard.accounts.access import volume_access
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record_request

ADMINS_ONLY = "Only admins manage volumes."
# Daytona refuses to delete a volume on its way out already.
UNDELETABLE = frozenset({"pending_delete", "deleting", "deleted"})


async def _guarded[T](
    request: HttpRequest,
    action: str,
    call: Callable[[], Awaitable[T]],
    *,
    target_id: str,
    name: str,
) -> T:
    """Refuse non-admins, run `call`, and record the outcome either way."""

    async def audit(outcome: str = Outcome.SUCCESS, error: str = "", target: str = "") -> None:
        await sync_to_async(record_request)(
            request,
            action,
            target_kind="volume",
            target_id=target or target_id,
            target_name=name,
            outcome=outcome,
            error=error,
        )

    if not volume_access(await request.auser()).act:
        await audit(Outcome.DENIED, ADMINS_ONLY)
        raise PermissionDenied(ADMINS_ONLY)
    try:
        result = await call()
    except daytona.DaytonaError as error:
        await audit(Outcome.FAILURE, error.message)
        raise
    await audit(target=result.id if isinstance(result, daytona.Volume) else "")
    return result


async def refuse(request: HttpRequest, action: str, volume_id: str) -> None:
    """Record that a non-admin tried `action`, and refuse it before Daytona is asked."""
    await sync_to_async(record_request)(
        request,
        action,
        target_kind="volume",
        target_id=volume_id,
        outcome=Outcome.DENIED,
        error=ADMINS_ONLY,
    )
    raise PermissionDenied(ADMINS_ONLY)


async def do_create_volume(request: HttpRequest, name: str) -> daytona.Volume:
    """Create a volume."""
    return await _guarded(
        request, "volume.create", lambda: daytona.create_volume(name), target_id="", name=name
    )


async def do_delete_volume(request: HttpRequest, volume: daytona.Volume) -> None:
    """Delete a volume; Daytona refuses (Conflict) while a sandbox mounts it."""
    await _guarded(
        request,
        "volume.delete",
        lambda: daytona.delete_volume(volume.id),
        target_id=volume.id,
        name=volume.name,
    )
