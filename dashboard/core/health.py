"""Readiness for load balancers: can this worker serve people right now?

`/readyz` checks, at once and each within CHECK_SECONDS, the database, the channel
layer (which carries live updates between workers) and the Daytona connection. It
answers 200 when all pass, else 503; either way a JSON object with each part's
outcome and, for a failed part, a reason safe to show anyone: no addresses, keys or
driver messages, which may carry either. No sign-in: a load balancer has none.
Liveness (`/healthz`, in core/views.py) checks none of this: a worker whose database
is away is still alive and should not be restarted for it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from dashboard.daytona.client import connection as daytona_connection

log = logging.getLogger(__name__)

CHECK_SECONDS = 3.0


class NotReady(Exception):
    """A part is not ready; the message is what /readyz shows."""


def _ping_database() -> None:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        # A connection broken by a restarted server is dropped, so the next check (or
        # request) opens a new one: ready again as soon as the database is back.
        connection.close()
        log.warning("readyz: the database failed: %s", type(error).__name__)
        raise NotReady(f"the database cannot be reached ({type(error).__name__})") from None


async def database() -> None:
    """A round trip to the database."""
    await sync_to_async(_ping_database)()


async def channel_layer() -> None:
    """A message through the channel layer to this worker and back."""
    layer = get_channel_layer()
    if layer is None:
        raise NotReady("no channel layer is configured")
    try:
        name = await layer.new_channel("readyz.")
        await layer.send(name, {"type": "readyz"})
        await layer.receive(name)
    except Exception as error:  # each backend has its own (redis-py's are not OSErrors)
        log.warning("readyz: the channel layer failed: %s", type(error).__name__)
        raise NotReady(f"the channel layer cannot be reached ({type(error).__name__})") from None


async def daytona() -> None:
    """Daytona's API answers (any answer below 500: the health path needs no key)."""
    try:
        async with daytona_connection() as http:
            response = await http.get(settings.DAYTONA_API_URL + "/health", timeout=CHECK_SECONDS)
    except httpx.TimeoutException:
        raise NotReady("Daytona did not answer in time") from None
    except httpx.HTTPError as error:
        raise NotReady(f"Daytona cannot be reached ({type(error).__name__})") from None
    if response.status_code >= 500:
        raise NotReady(f"Daytona answered {response.status_code}")


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "database": database,
    "channel_layer": channel_layer,
    "daytona": daytona,
}


async def _outcome(check: Callable[[], Awaitable[None]]) -> dict[str, object]:
    try:
        await asyncio.wait_for(check(), CHECK_SECONDS)
    except TimeoutError:
        return {"ok": False, "reason": f"no answer within {CHECK_SECONDS:g} s"}
    except NotReady as not_ready:
        return {"ok": False, "reason": str(not_ready)}
    except Exception as error:
        # A check must never turn /readyz into a 500: the balancer needs a clear 503.
        log.exception("readyz: a check failed unexpectedly")
        return {"ok": False, "reason": f"the check failed ({type(error).__name__})"}
    return {"ok": True}


@login_not_required
@never_cache
async def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, channel layer and Daytona all answer; else 503, with why."""
    names = list(CHECKS)
    outcomes = await asyncio.gather(*(_outcome(CHECKS[name]) for name in names))
    checks = dict(zip(names, outcomes, strict=True))
    ready = all(outcome["ok"] for outcome in outcomes)
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)
