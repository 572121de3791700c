"""HTTP to Daytona: pooled httpx.AsyncClients, errors with Daytona's message.

An AsyncClient is bound to the event loop that opened its connections. Under the
ASGI server, views and consumers run on the server's one long-lived loop, and
`serve_from_this_loop` (called by `dashboard.asgi` when the server starts) gives
that loop a client of its own: calls go straight out. Every other caller (the test
client and `async_to_sync`, which make a fresh, short-lived loop per call,
management commands) shares one client on a loop of our own in a daemon thread,
and crosses to it for each call. Crossing costs two thread switches, which on a
busy machine can take milliseconds each; hence the server's own client.
"""

import asyncio
import atexit
import logging
import threading
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any

import httpx
from django.conf import settings

log = logging.getLogger(__name__)

# Only reads are retried, and only when the request surely never took effect
# or the gateway said so; a slow Daytona is not asked again (it would only
# multiply the wait).
_RETRY_STATUSES = {502, 503, 504}
_RETRY_DELAYS = (0.1, 0.4)
_USER_AGENT = "sandbar"
# Set by `started`: told (on the client's loop) when a request leaves for Daytona.
_on_sent: ContextVar[Callable[[], None] | None] = ContextVar("daytona_on_sent", default=None)


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


class _Runner:
    """The private event loop and the AsyncClient that lives on it."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="daytona-client", daemon=True)
        self.transport = transport
        self.http: httpx.AsyncClient | None = None
        self.thread.start()
        self.ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.http = _new_client(self.transport)
        self.loop.call_soon(self.ready.set)
        self.loop.run_forever()

    def close(self) -> None:
        if not self.loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self.http.aclose(), self.loop)
        try:
            future.result(timeout=5)
        except Exception:
            log.debug("closing the Daytona client failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


_runner: _Runner | None = None
_runner_lock = threading.Lock()
_transport: httpx.AsyncBaseTransport | None = None


def _new_client(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
    )


# The server loops (one in production; each test server has its own) and their clients.
_homes: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def serve_from_this_loop() -> None:
    """Make the running loop (an ASGI server's) call Daytona with a client of its own."""
    loop = asyncio.get_running_loop()
    if loop not in _homes:
        _homes[loop] = _new_client(_transport)


async def release_this_loop() -> None:
    """Close the running loop's client (its ASGI server is shutting down)."""
    http = _homes.pop(asyncio.get_running_loop(), None)
    if http is not None:
        await http.aclose()


def _at_home() -> httpx.AsyncClient | None:
    """The running loop's own client, if it is a server loop."""
    if not _homes:
        return None
    try:
        return _homes.get(asyncio.get_running_loop())
    except RuntimeError:
        return None


def _http() -> httpx.AsyncClient:
    """The client for the running loop: the server's own, or the client thread's."""
    home = _at_home()
    if home is not None:
        return home
    runner = _get_runner()
    assert runner.http is not None
    return runner.http


def _get_runner() -> _Runner:
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = _Runner()
        return _runner


def use_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Replace the process's clients with ones over `transport` (None: the network). For tests."""
    global _runner, _transport
    with _runner_lock:
        _transport = transport
        old, _runner = _runner, _Runner(transport)
    if old is not None:
        old.close()
    for loop, http in list(_homes.items()):
        # Each server loop gets a client over the new transport; the old one is closed there.
        if loop.is_running():
            _homes[loop] = _new_client(transport)
            asyncio.run_coroutine_threadsafe(http.aclose(), loop)


@atexit.register
def _close_at_exit() -> None:
    if _runner is not None:
        _runner.close()


def _api_key() -> str:
    if settings.DAYTONA_API_KEY:
        return settings.DAYTONA_API_KEY
    try:
        return settings.DAYTONA_API_KEY_FILE.read_text().strip()
    except OSError:
        raise Unavailable(
            "No Daytona API key: set DAYTONA_API_KEY, or start the embedded engine once "
            "so it writes its key."
        ) from None


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
    http = _http()
    url = settings.DAYTONA_API_URL + path
    headers = {"Authorization": f"Bearer {_api_key()}"}
    idempotent = method == "GET"
    attempts = len(_RETRY_DELAYS) + 1 if idempotent else 1
    for attempt in range(attempts):
        retry = attempt < attempts - 1
        if (on_sent := _on_sent.get()) is not None:
            on_sent()
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


async def _on_runner[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` where a client lives: right here on the server's loop, else on ours."""
    if _at_home() is not None:
        return await coro
    runner = _get_runner()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, runner.loop))


async def started[T](call: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
    """Start `call` (one or more requests to Daytona) and return, as a task, once its
    first request is on its way; the caller works on while Daytona answers.

    Waiting for the request to leave matters: work started right away would hold the
    loop (or, when the client runs in its thread, the interpreter lock it needs to
    send), so the two would take turns instead of overlapping.
    """
    loop = asyncio.get_running_loop()
    sent = loop.create_future()

    def signal() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(lambda: sent.done() or sent.set_result(None))

    token = _on_sent.set(signal)
    try:
        task = asyncio.ensure_future(call)  # it runs in a copy of this context
    finally:
        _on_sent.reset(token)
    await asyncio.wait([sent, task], return_when=asyncio.FIRST_COMPLETED)
    if not sent.done():
        sent.cancel()
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
    """One call to the Daytona API at `path` (under DAYTONA_API_URL); the decoded JSON
    (with `raw`, the body's bytes) or None."""
    seconds = float(time_limit if time_limit is not None else settings.DAYTONA_TIMEOUT)
    call = _send(method, path, params=params, json=json, seconds=seconds, raw=raw)
    return await _on_runner(call)
