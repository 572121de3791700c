"""HTTP to Daytona: one pooled httpx.AsyncClient, errors with Daytona's message.

An AsyncClient belongs to the event loop that opened its connections. The ASGI
server opens the one shared client on its loop when it starts and closes it when
it stops (`open_shared`/`close_shared`, called from `dashboard.asgi` on the
lifespan events uvicorn sends). A call on any other loop (the test client and
`async_to_sync`, which make a short-lived loop per call; management commands)
opens a client for that call and closes it after: `connection()` is the only way
to the network, and says which of the two it hands out.

The API key is read once, on first use, and kept (a key file the embedded engine
has yet to write is looked for again on the next call). Django's `setting_changed`
signal for a Daytona setting forgets it; a key changed on disk takes a restart.

That is the default Daytona. A request may aim at another (a connection an admin
added): `aimed_at(Target(...))` around it, or `use_target`, sets a ContextVar that
every call below reads for the URL and the sign-in headers; tasks started inside
inherit it. On the server's loop each target gets a pooled client of its own, named
by `Target.pool`, so one slow Daytona cannot take another's connections.
"""

import asyncio
import contextlib
import contextvars
import functools
import logging
import ssl
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

log = logging.getLogger(__name__)

# Only reads are retried, and only when the request surely never took effect
# or the gateway said so; a slow Daytona is not asked again (it would only
# multiply the wait).
_RETRY_STATUSES = {502, 503, 504}
_RETRY_DELAYS = (0.1, 0.4)
# A server may close a kept-alive connection just as we send on it: the request fails
# with one of these before any answer. A read is sent again at once, on a new connection.
_STALE_CONNECTION = (httpx.ReadError, httpx.RemoteProtocolError)
# The client drops an idle connection after this (httpx's default, stated so the engine's
# longer limit in engine/server.py can be held against it): when both sides used 5 s,
# each drop raced a request about to be sent on it. The retry covers a Daytona, or a
# proxy before it, whose idle limit is as short or shorter.
KEEPALIVE_SECONDS = 5.0
_USER_AGENT = "sandbar"
_KEY_SETTINGS = {"DAYTONA_API_KEY", "DAYTONA_API_KEY_FILE", "DAYTONA_API_URL"}


class DaytonaError(Exception):
    """Daytona refused or failed a call; `message` is safe to show to people."""

    status: int | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(DaytonaError):
    status = 404


class Forbidden(DaytonaError):
    status = 403


class Conflict(DaytonaError):
    status = 409


class QuotaExceeded(DaytonaError):
    status = 403


class BadRequest(DaytonaError):
    status = 400


class Unavailable(DaytonaError):
    """Daytona could not be reached, was too slow, failed (5xx) or answered nonsense."""

    status = 503


@dataclass(frozen=True)
class Target:
    """A Daytona other than the configured default, and how to sign in to it."""

    pool: str  # names its pooled client; one per connection
    url: str  # the API root, as DAYTONA_API_URL
    # Authorization (and X-Daytona-Organization-ID); out of repr, which reaches logs.
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    # Set when the target cannot be used (its secret cannot be opened): every call
    # fails with this message instead of going to another Daytona.
    error: str = ""
    # What people call it (the connection's name), for records of what was done where.
    name: str = ""
    # Its row's id, for what Sandbar keeps per connection (quotas).
    connection_id: int | None = None


_target: contextvars.ContextVar[Target | None] = contextvars.ContextVar(
    "daytona_target", default=None
)


def use_target(target: Target | None) -> contextvars.Token:
    """Aim the calls of this context (and tasks it starts) at `target`; None: the default."""
    return _target.set(target)


def reset_target(token: contextvars.Token) -> None:
    _target.reset(token)


@contextlib.contextmanager
def aimed_at(target: Target | None) -> Iterator[None]:
    token = use_target(target)
    try:
        yield
    finally:
        reset_target(token)


def current_target() -> Target | None:
    return _target.get()


def api_url() -> str:
    """The API root calls go to: the target's, else DAYTONA_API_URL."""
    target = _target.get()
    return target.url if target is not None else settings.DAYTONA_API_URL


def scope() -> str:
    """Names the Daytona (and sign-in) calls go to, for keys of what is kept per connection."""
    target = _target.get()
    return f"{target.pool}:{target.url}" if target is not None else settings.DAYTONA_API_URL


class _Shared:
    """The server's clients (the default's and one per target) and their loop."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport = transport
        self.http = _new_client(transport)
        self.pools: dict[str, httpx.AsyncClient] = {}
        # Retired pools still in their grace, and the timers that will close them.
        self.retiring: dict[httpx.AsyncClient, asyncio.TimerHandle] = {}

    def client_for(self, target: Target | None) -> httpx.AsyncClient:
        if target is None:
            return self.http
        client = self.pools.get(target.pool)
        if client is None:
            client = self.pools[target.pool] = _new_client(self.transport)
        return client


_shared: _Shared | None = None
_transport: httpx.AsyncBaseTransport | None = None
_authorization: dict[str, str] | None = None


@functools.cache
def _tls() -> ssl.SSLContext:
    # Built once: loading the CA bundle takes milliseconds, far more than a client.
    return httpx.create_ssl_context()


def _new_client(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport,
        verify=_tls(),
        limits=httpx.Limits(
            max_connections=50, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_SECONDS
        ),
        headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
    )


async def open_shared() -> None:
    """Open the client the running loop (the ASGI server's) shares for its lifetime."""
    global _shared
    if _shared is not None and not _shared.loop.is_closed():
        log.warning("a Daytona client is already shared on another loop; keeping it")
        return
    _shared = _Shared(_transport)


async def close_shared() -> None:
    """Close the shared client (the ASGI server is shutting down)."""
    global _shared
    shared, _shared = _shared, None
    if shared is None:
        return
    # Retired pools in their grace too: their timers would fire on a stopped loop, or
    # never, leaving their sockets open.
    for timer in shared.retiring.values():
        timer.cancel()
    for http in [shared.http, *shared.pools.values(), *shared.retiring]:
        await http.aclose()
    shared.retiring.clear()
    # Those whose grace just ended are closing already: let them finish.
    closing = [task for task in _retiring if task.get_loop() is shared.loop]
    await asyncio.gather(*closing, return_exceptions=True)


# A retired pool closes this long after it stops being handed out, so calls already
# holding it (bounded by DAYTONA_TIMEOUT, most of them) finish instead of failing.
RETIRE_GRACE_SECONDS = 30.0
_retiring: set[asyncio.Task[None]] = set()
# Clients retired with their connection: a call still holding one when it closes is told
# the connection was removed, not that Daytona is away.
_retired: "weakref.WeakSet[httpx.AsyncClient]" = weakref.WeakSet()
REMOVED_MESSAGE = "This Daytona connection was removed while the call was under way."
CLOSED_MESSAGE = "Daytona cannot be reached: the dashboard is shutting down."


def pool_names() -> list[str]:
    """The targets' pools open on the server's loop (none outside the server)."""
    shared = _shared
    return list(shared.pools) if shared is not None else []


def retire_pool(pool: str) -> None:
    """Stop handing out `pool`'s client (its connection is gone) and close it after a
    grace; callable from any thread. A later call aimed at it would open a new one."""
    shared = _shared
    if shared is None or shared.loop.is_closed():
        return

    def retire() -> None:
        http = shared.pools.pop(pool, None)
        if http is not None:
            _retired.add(http)
            timer = shared.loop.call_later(RETIRE_GRACE_SECONDS, _close_later, shared, http)
            shared.retiring[http] = timer

    try:
        here = asyncio.get_running_loop() is shared.loop
    except RuntimeError:
        here = False
    if here:
        retire()
    else:
        shared.loop.call_soon_threadsafe(retire)


def _close_later(shared: _Shared, http: httpx.AsyncClient) -> None:
    shared.retiring.pop(http, None)
    task = asyncio.get_running_loop().create_task(http.aclose())
    _retiring.add(task)  # held, or the loop may drop it half done
    task.add_done_callback(_retiring.discard)


@contextlib.asynccontextmanager
async def connection() -> AsyncIterator[httpx.AsyncClient]:
    """The shared client (of the target, if any) on the server's loop; anywhere else, a
    client for this call."""
    shared = _shared
    if shared is not None and shared.transport is _transport:
        try:
            here = asyncio.get_running_loop() is shared.loop
        except RuntimeError:
            here = False
        if here:
            http = shared.client_for(_target.get())
            try:
                yield http
            # httpx raises a RuntimeError (a 500) on a closed client: a request in flight
            # when it closes gets a ReadError, and a read is then sent again on it.
            except (RuntimeError, httpx.TransportError, Unavailable):
                if not http.is_closed:
                    raise
                raise Unavailable(_closed_message(http)) from None
            return
    async with _new_client(_transport) as http:
        yield http


def _closed_message(http: httpx.AsyncClient) -> str:
    return REMOVED_MESSAGE if http in _retired else CLOSED_MESSAGE


def use_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Send every later call over `transport` (None: the network). For tests."""
    global _transport
    _transport = transport


def api_key() -> str:
    """The Daytona API key: DAYTONA_API_KEY, else the file the embedded engine wrote."""
    return auth_header()["Authorization"].removeprefix("Bearer ")


def auth_header() -> dict[str, str]:
    """`Authorization: Bearer <key>`, built on first use and kept (see the module's doc);
    the target's sign-in headers when a request aims at one."""
    global _authorization
    target = _target.get()
    if target is not None:
        if target.error:
            raise Unavailable(target.error)
        return target.headers
    if _authorization is None:
        _authorization = {"Authorization": f"Bearer {_read_key()}"}
    return _authorization


def _read_key() -> str:
    if settings.DAYTONA_API_KEY:
        return settings.DAYTONA_API_KEY
    try:
        key = settings.DAYTONA_API_KEY_FILE.read_text().strip()
    except OSError:
        key = ""
    if not key:
        raise Unavailable(
            "No Daytona API key: set DAYTONA_API_KEY, or start the embedded engine once "
            "so it writes its key."
        )
    return key


@receiver(setting_changed)
def _forget_the_key(*, setting: str, **kwargs: Any) -> None:
    global _authorization
    if setting in _KEY_SETTINGS:
        _authorization = None


def _message(response: httpx.Response) -> str:
    """Daytona's own words for an error, from `message` (string or list) or `error`."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, list):
            message = "; ".join(str(part) for part in message)
        if message:
            return str(message)[:500]
    return f"Daytona answered {response.status_code} {response.reason_phrase}".strip()


def _error_for(response: httpx.Response) -> DaytonaError:
    status = response.status_code
    message = _message(response)
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status == 429:
        return QuotaExceeded(message, status)
    if status in (401, 403):
        lowered = message.lower()
        if "quota" in lowered or "limit" in lowered:
            return QuotaExceeded(message, status)
        return Forbidden(message, status)
    if status in (400, 422):
        return BadRequest(message, status)
    if status >= 500:
        return Unavailable(f"Daytona failed: {message}", status)
    return DaytonaError(message, status)


async def _send(
    method: str,
    path: str,
    *,
    params: list[tuple[str, str]] | None,
    json: Any,
    seconds: float,
    raw: bool = False,
) -> Any:
    headers = auth_header()
    url = api_url() + path
    async with connection() as http:
        return await _send_on(http, method, url, params, json, headers, seconds, raw)


async def _send_on(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    params: list[tuple[str, str]] | None,
    json: Any,
    headers: dict[str, str],
    seconds: float,
    raw: bool,
) -> Any:
    idempotent = method == "GET"
    attempts = len(_RETRY_DELAYS) + 1 if idempotent else 1
    stale_retried = False
    for attempt in range(attempts):
        retry = attempt < attempts - 1
        try:
            response = await http.request(
                method, url, params=params, json=json, headers=headers, timeout=seconds
            )
        except httpx.TimeoutException:
            raise Unavailable(f"Daytona did not answer within {seconds:g} seconds.") from None
        except httpx.TransportError as error:
            if retry and isinstance(error, httpx.ConnectError):
                await asyncio.sleep(_RETRY_DELAYS[attempt])
                continue
            if retry and not stale_retried and isinstance(error, _STALE_CONNECTION):
                stale_retried = True
                continue
            # The exception text names the host, never the key: safe to show.
            raise Unavailable(f"Daytona cannot be reached ({type(error).__name__}).") from None
        if response.status_code in _RETRY_STATUSES and retry:
            await asyncio.sleep(_RETRY_DELAYS[attempt])
            continue
        if response.is_error:
            raise _error_for(response)
        if response.status_code == 204 or not response.content:
            return None
        if raw:
            return response.content
        try:
            return response.json()
        except ValueError:
            raise Unavailable("Daytona answered with something that is not JSON.") from None
    raise AssertionError("unreachable")


async def started[T](call: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
    """Start `call` (one or more requests to Daytona) and return it as a task once it
    has run up to its first wait, which is the network: the caller works on while
    Daytona answers, instead of the two taking turns."""
    task = asyncio.ensure_future(call)
    await asyncio.sleep(0)  # the task was scheduled first: it runs until it waits
    return task


async def request(
    method: str,
    path: str,
    *,
    params: list[tuple[str, str]] | None = None,
    json: Any = None,
    time_limit: float | None = None,
    raw: bool = False,
) -> Any:
    """One call to the Daytona API at `path` (under `api_url()`); the decoded JSON
    (with `raw`, the body's bytes) or None."""
    seconds = float(time_limit if time_limit is not None else settings.DAYTONA_TIMEOUT)
    return await _send(method, path, params=params, json=json, seconds=seconds, raw=raw)
