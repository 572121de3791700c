"""Readiness for load balancers: can this worker serve people right now?

`/readyz` checks, at once and each within CHECK_SECONDS, the database, the channel
layer (which carries live updates between workers) and every Daytona connection (the
Default and each one an admin added). It answers 503 when the database or the channel
layer fails, or when no connection at all answers; one Daytona away is reported, not
failed on: it is not this worker's fault, and taking every worker out of the balancer
would take the dashboard from the people on the other connections. Either way a JSON
object with each part's outcome and, for a failed part, a reason safe to show anyone:
no addresses, keys or driver messages, which may carry either. Connections are asked
concurrently, each within CONNECTION_SECONDS, and their answers kept for
CONNECTIONS_CACHE_SECONDS, so balancers asking every second do not become traffic to
Daytona. No sign-in: a load balancer has none.
Liveness (`/healthz`, in core/views.py) checks none of this: a worker whose database
is away is still alive and should not be restarted for it.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from dashboard.daytona import client

log = logging.getLogger(__name__)

CHECK_SECONDS = 3.0
CONNECTION_SECONDS = 2.0
CONNECTIONS_CACHE_SECONDS = 5.0
# (name, target) of each Daytona connection; None: the Default. The connections app
# registers its lister (core may not import it); without one, the Default alone.
Lister = Callable[[], list[tuple[str, client.Target | None]]]
DEFAULT_ONLY: list[tuple[str, client.Target | None]] = [("Default", None)]
_lister: Lister = lambda: DEFAULT_ONLY  # noqa: E731


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


async def daytona(target: client.Target | None = None) -> None:
    """The Daytona of `target` answers (any answer below 500: the health path needs no
    key), on that connection's pooled client."""
    if target is not None and target.error:
        raise NotReady("its stored secret cannot be opened")
    with client.aimed_at(target):
        try:
            async with client.connection() as http:
                response = await http.get(client.api_url() + "/health", timeout=CONNECTION_SECONDS)
        except httpx.TimeoutException:
            raise NotReady("Daytona did not answer in time") from None
        except httpx.HTTPError as error:
            raise NotReady(f"Daytona cannot be reached ({type(error).__name__})") from None
    if response.status_code >= 500:
        raise NotReady(f"Daytona answered {response.status_code}")


def register_connections(lister: Lister) -> None:
    """Where /readyz learns the connections: `lister()` (sync, may query the database)."""
    global _lister
    _lister = lister


async def _listed() -> list[tuple[str, client.Target | None]]:
    try:
        return await sync_to_async(_lister)()
    except Exception:  # the database is away: its own check says so
        return DEFAULT_ONLY


# What each connection answered last: (what was asked, until when, the answers).
_kept: tuple[tuple, float, list[dict[str, object]]] | None = None
_asking: "tuple[tuple, asyncio.Task[list[dict[str, object]]]] | None" = None


async def _ask(listed: list[tuple[str, client.Target | None]]) -> list[dict[str, object]]:
    async def one(name: str, target: client.Target | None) -> dict[str, object]:
        outcome = await _outcome(lambda: daytona(target), CONNECTION_SECONDS)
        return {"name": name, "ok": outcome["ok"], "reason": outcome.get("reason", "")}

    return list(await asyncio.gather(*(one(name, target) for name, target in listed)))


async def connections() -> list[dict[str, object]]:
    """Each connection's name, whether it answers and why not; asked at most once per
    CONNECTIONS_CACHE_SECONDS for the same connections, and by one request at a time."""
    global _kept, _asking
    listed = await _listed()
    key = tuple(_asked_of(name, target) for name, target in listed)
    if _kept is not None and _kept[0] == key and time.monotonic() < _kept[1]:
        return _kept[2]
    loop = asyncio.get_running_loop()
    if (
        _asking is None
        or _asking[0] != key
        or _asking[1].done()
        or _asking[1].get_loop() is not loop
    ):
        _asking = (key, loop.create_task(_ask(listed)))
    # Shielded: a request that gives up (its own time limit) leaves the answers to the
    # others waiting on them.
    answers = await asyncio.shield(_asking[1])
    _kept = (key, time.monotonic() + CONNECTIONS_CACHE_SECONDS, answers)
    return answers


def _asked_of(name: str, target: client.Target | None) -> tuple[str, ...]:
    """What an answer kept is an answer to: a connection changed is asked afresh."""
    if target is None:
        return (name, settings.DAYTONA_API_URL)
    return (name, target.pool, target.url, target.error)


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "database": database,
    "channel_layer": channel_layer,
}


async def _outcome(
    check: Callable[[], Awaitable[None]], seconds: float | None = None
) -> dict[str, object]:
    seconds = CHECK_SECONDS if seconds is None else seconds
    try:
        await asyncio.wait_for(check(), seconds)
    except TimeoutError:
        return {"ok": False, "reason": f"no answer within {seconds:g} s"}
    except NotReady as not_ready:
        return {"ok": False, "reason": str(not_ready)}
    except Exception as error:
        # A check must never turn /readyz into a 500: the balancer needs a clear 503.
        log.exception("readyz: a check failed unexpectedly")
        return {"ok": False, "reason": f"the check failed ({type(error).__name__})"}
    return {"ok": True}


async def _daytona_check() -> tuple[dict[str, object], list[dict[str, object]]]:
    """The Daytona part: ok when any connection answers; and each connection's answer."""
    try:
        answers = await asyncio.wait_for(connections(), CHECK_SECONDS)
    except TimeoutError:
        return {"ok": False, "reason": f"no answer within {CHECK_SECONDS:g} s"}, []
    if any(answer["ok"] for answer in answers):
        return {"ok": True}, answers
    return {"ok": False, "reason": "no Daytona connection can be reached"}, answers


@login_not_required
@never_cache
async def readyz(request: HttpRequest) -> JsonResponse:
    """503 when the database or the channel layer fails, or no Daytona connection
    answers; else 200. Each part's outcome, and each connection's, with why (by name
    for a signed-in admin; the Default first, then by name)."""
    names = list(CHECKS)
    outcomes, (daytona_outcome, answers) = await asyncio.gather(
        asyncio.gather(*(_outcome(CHECKS[name]) for name in names)), _daytona_check()
    )
    checks = dict(zip(names, outcomes, strict=True))
    checks["daytona"] = daytona_outcome
    ready = all(outcome["ok"] for outcome in checks.values())
    # The names admins gave their connections (often a customer's or a team's) are for
    # admins; a balancer, which asks signed out, gets each one's answer in a fixed order.
    user = await request.auser()
    if not getattr(user, "is_admin", False):
        answers = [{k: v for k, v in answer.items() if k != "name"} for answer in answers]
    body = {"ready": ready, "checks": checks, "connections": answers}
    return JsonResponse(body, status=200 if ready else 503)
