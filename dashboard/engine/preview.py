"""Preview URLs: a sandbox's ports served on the engine's own port, routed by host name.

``GET /api/sandbox/{id}/ports/{port}/preview-url`` hands out
``http://{port}-{id}.localhost:{enginePort}`` with the sandbox's preview token;
``…/signed-preview-url`` hands out ``http://{port}-{token}.localhost:{enginePort}``,
whose token is the credential and expires. Browsers resolve ``*.localhost`` to loopback
by themselves, so no DNS is needed. :class:`PreviewHosts` sits in front of the whole
application and takes every request whose Host names a preview, before the API's Bearer
check: it authenticates as Daytona's proxy does (public sandbox, the
``X-Daytona-Preview-Token`` header, the ``DAYTONA_SANDBOX_AUTH_KEY`` query parameter,
the API key as Bearer, or a live signed token) and relays HTTP (streamed both ways) and
WebSockets to that port on the sandbox's own loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import logging
import re
import secrets
import select
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import websockets
from anyio.abc import SocketAttribute, SocketStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from dashboard.engine.errors import ApiError, BadRequest, NotFound, Unauthorized
from dashboard.engine.lifecycle import Engine
from dashboard.engine.runtime import NotRunning, RunningSandbox, Runtime
from dashboard.engine.store import iso, now
from dashboard.engine.toolbox_ports import PortClosed, SandboxDialer

log = logging.getLogger("sandbar.engine")

PREVIEW_HOST = re.compile(r"^(\d{1,5})-([a-z0-9][a-z0-9-]*)\.localhost(?::\d{1,5})?$")
SIGNED_TOKEN = re.compile(r"^[a-z0-9]{16}$")  # Daytona's: 16 lowercase letters and digits
TOKEN_HEADER = b"x-daytona-preview-token"
TOKEN_QUERY = "DAYTONA_SANDBOX_AUTH_KEY"  # noqa: S105 -- a parameter name, not a secret
DEFAULT_EXPIRY = 60
MAX_EXPIRY = 24 * 3600
MAX_SIGNED = 10_000  # live signed tokens at once; each is a few hundred bytes
MAX_WS_MESSAGE = 16 << 20  # uvicorn's own default for the client side
# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business, never relayed.
# Transfer-Encoding is kept on requests: h11 frames the relayed body by it again.
HOP_BY_HOP = {
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"upgrade",
}  # fmt: skip
WS_HEADERS = {b"cookie", b"authorization", b"user-agent", b"accept-language"}


@dataclass(frozen=True)
class Target:
    """Where one preview request goes, once it is authenticated."""

    sandbox_id: str
    running: RunningSandbox
    port: int
    headers: list[tuple[bytes, bytes]]  # the client's, minus the credentials used
    query: bytes


class _ClientGone(Exception):
    """The client left while its request body was being relayed."""


class PreviewError(Exception):
    """A preview request answered by the engine itself (an error page)."""

    def __init__(self, error: ApiError, title: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.title = title


# -- httpcore's way into a sandbox ------------------------------------------------------


class _SandboxStream(httpcore.AsyncNetworkStream):
    """httpcore's view of a connection into a sandbox (an anyio socket stream)."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 -- httpcore's interface
        try:
            with anyio.fail_after(timeout):
                return await self.stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as error:
            raise httpcore.ReadTimeout(str(error)) from error
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
            raise httpcore.ReadError(str(error)) from error

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 -- httpcore's interface
        if not buffer:
            return
        try:
            with anyio.fail_after(timeout):
                await self.stream.send(buffer)
        except TimeoutError as error:
            raise httpcore.WriteTimeout(str(error)) from error
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
            raise httpcore.WriteError(str(error)) from error

    async def aclose(self) -> None:
        with contextlib.suppress(OSError, anyio.BrokenResourceError):
            await self.stream.aclose()

    def get_extra_info(self, info: str) -> Any:
        raw: socket.socket = self.stream.extra(SocketAttribute.raw_socket)  # noqa: S610 -- anyio's, not Django's
        if info == "is_readable":
            # An idle keep-alive connection that reads as readable was closed by the
            # server (or the sandbox stopped): httpcore then drops it from the pool.
            poller = select.poll()
            poller.register(raw, select.POLLIN)
            return bool(poller.poll(0))
        if info == "socket":
            return raw
        return None


class _SandboxBackend(httpcore.AsyncNetworkBackend):
    """Connects httpcore to ``port`` inside the sandbox whose id is the URL's host."""

    def __init__(self, dialer: SandboxDialer, runtime: Runtime) -> None:
        self.dialer = dialer
        self.runtime = runtime

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # The pool keeps connections per sandbox and port; one left from before a
        # restart reads as closed (its server died with the sandbox) and is dropped.
        sock = await self.dialer.connect(self.runtime.get(host), port)
        return _SandboxStream(await SocketStream.from_socket(sock))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NotImplementedError("previews only reach TCP ports")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


# -- tokens and the relay ---------------------------------------------------------------


class Previews:
    """Preview tokens, signed tokens and the relay into sandboxes, for one engine."""

    def __init__(self, engine: Engine, api_key: str) -> None:
        self.engine = engine
        self._key = api_key.encode()
        self._bearer = f"Bearer {api_key}".encode()
        self._signed: dict[tuple[int, str], tuple[str, float]] = {}
        self._dialer: SandboxDialer | None = None
        self._pool: httpcore.AsyncConnectionPool | None = None

    # tokens

    def token_for(self, sandbox_id: str) -> str:
        """The sandbox's preview token: derived from the API key, so it lasts as long as
        the sandbox and the key, with nothing stored."""
        digest = hmac.new(self._key, f"preview:{sandbox_id}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest[:20]).decode().lower()

    def sign(self, sandbox_id: str, port: int, expires_in: int) -> str:
        """A new signed token for ``port`` of the sandbox, valid ``expires_in`` seconds."""
        self._purge()
        if len(self._signed) >= MAX_SIGNED:
            raise ApiError(
                f"too many live signed preview URLs ({MAX_SIGNED}); expire some first",
                status=429,
            )
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        token = "".join(secrets.choice(alphabet) for _ in range(16))
        self._signed[(port, token)] = (sandbox_id, time.monotonic() + expires_in)
        return token

    def expire(self, sandbox_id: str, port: int, token: str) -> None:
        """End a signed token of this sandbox now (unknown ones are ignored, as in Daytona)."""
        entry = self._signed.get((port, token))
        if entry is not None and entry[0] == sandbox_id:
            del self._signed[(port, token)]

    def _signed_sandbox(self, port: int, token: str) -> str | None:
        entry = self._signed.get((port, token))
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._signed[(port, token)]
            return None
        return entry[0]

    def _purge(self) -> None:
        moment = time.monotonic()
        for key in [key for key, (_, deadline) in self._signed.items() if deadline <= moment]:
            del self._signed[key]

    # authentication

    def authorize(self, port: int, label: str, scope: Scope) -> Target:
        """Who may reach what: the target of an authenticated request, or PreviewError."""
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        query: bytes = scope.get("query_string", b"")
        sandbox_id = self._signed_sandbox(port, label)
        if sandbox_id is None:
            record = self.engine.store.get(label)
            if record is None or record.id != label:
                if SIGNED_TOKEN.match(label):
                    raise PreviewError(
                        Unauthorized(
                            "Invalid or expired token: this signed preview URL has expired or "
                            "was expired; ask for a new one"
                        ),
                        "Preview link expired",
                    )
                raise PreviewError(NotFound(f"Sandbox with ID {label} not found"), "No sandbox")
            sandbox_id = record.id
            if not record.public:
                headers, query = self._authenticate(sandbox_id, headers, query)
        try:
            record = self.engine.find_started(sandbox_id)
            running = self.engine.runtime.get(record.id)
        except ApiError as error:
            raise PreviewError(error, "Sandbox not started") from None
        except NotRunning as error:
            raise PreviewError(ApiError(str(error), status=409), "Sandbox not started") from None
        return Target(record.id, running, port, self._without_key(headers), query)

    def _without_key(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The API key is taken out whatever let the request in (a public sandbox, a
        signed URL, or the token beside it): the sandbox's server must never see it."""
        return [
            (name, value)
            for name, value in headers
            if name != b"authorization" or not hmac.compare_digest(value.strip(), self._bearer)
        ]

    def _authenticate(
        self, sandbox_id: str, headers: list[tuple[bytes, bytes]], query: bytes
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The headers and query without the credential that got the request in."""
        token = self.token_for(sandbox_id).encode()
        for index, (name, value) in enumerate(headers):
            if name == TOKEN_HEADER and hmac.compare_digest(value.strip(), token):
                return headers[:index] + headers[index + 1 :], query
            if name == b"authorization" and hmac.compare_digest(value.strip(), self._bearer):
                return headers[:index] + headers[index + 1 :], query
        # The query is split by hand so what goes on to the server keeps its own encoding.
        pieces = query.split(b"&") if query else []
        mine = [piece for piece in pieces if _query_key(piece) == TOKEN_QUERY]
        if any(
            hmac.compare_digest(urllib.parse.unquote_to_bytes(piece.partition(b"=")[2]), token)
            for piece in mine
        ):
            return headers, b"&".join(piece for piece in pieces if piece not in mine)
        offered = bool(mine) or any(name in (TOKEN_HEADER, b"authorization") for name, _ in headers)
        message = (
            "authentication failed: the preview token or API key is invalid"
            if offered
            else "missing authentication: this sandbox is private; send its preview token in "
            "the X-Daytona-Preview-Token header (or the API key as a Bearer token), or use a "
            "signed preview URL"
        )
        raise PreviewError(Unauthorized(message), "Preview needs a token")

    # the relay

    async def aclose(self) -> None:
        """Close pooled connections and the dialer's thread (at the engine's shutdown)."""
        if self._pool is not None:
            await self._pool.aclose()
        if self._dialer is not None:
            self._dialer.close()
        self._pool = self._dialer = None

    def _connections(self) -> tuple[SandboxDialer, httpcore.AsyncConnectionPool]:
        if self._dialer is None or self._pool is None:
            self._dialer = SandboxDialer()
            self._pool = httpcore.AsyncConnectionPool(
                max_connections=None,
                max_keepalive_connections=64,
                keepalive_expiry=10.0,
                network_backend=_SandboxBackend(self._dialer, self.engine.runtime),
            )
        return self._dialer, self._pool

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, port: int, label: str
    ) -> None:
        """Answer one preview request or WebSocket."""
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] in ("http.response.start", "websocket.accept")
            await send(message)

        try:
            await self._serve(scope, receive, tracked, port, label)
        except Exception:
            log.exception("preview of port %s failed", port)
            if started:
                raise
            await _refuse(
                scope, receive, send, PreviewError(ApiError("Internal server error"), "Error")
            )

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, port: int, label: str
    ) -> None:
        try:
            if not 1 <= port <= 65535:
                raise PreviewError(BadRequest("Invalid port"), "Invalid port")
            target = self.authorize(port, label, scope)
            if scope["type"] == "websocket":
                # An open socket is activity for as long as it lasts (Daytona's proxy
                # reports it every 50 s), so auto-stop leaves the sandbox alone.
                with self.engine.busy(target.sandbox_id):
                    await self._websocket(scope, receive, send, target)
            else:
                await self._http(scope, receive, send, target)
        except PreviewError as refused:
            await _refuse(scope, receive, send, refused)

    async def _http(self, scope: Scope, receive: Receive, send: Send, target: Target) -> None:
        _, pool = self._connections()
        self.engine.touch(target.sandbox_id)
        body_read = False

        async def body() -> AsyncIterator[bytes]:
            nonlocal body_read
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body", False):
                    body_read = True
                    return

        path = scope.get("raw_path") or scope["path"].encode()
        request = httpcore.Request(
            scope["method"],
            httpcore.URL(
                scheme=b"http",
                host=target.sandbox_id.encode(),
                port=target.port,
                target=path + (b"?" + target.query if target.query else b""),
            ),
            headers=_upstream_headers(scope, target),
            content=body(),
            extensions={"timeout": {"connect": 10.0, "read": None, "write": 60.0, "pool": 30.0}},
        )
        try:
            response = await pool.handle_async_request(request)
        except _ClientGone:
            return
        except (PortClosed, NotRunning, TimeoutError) as error:
            raise _unreachable(target, error) from None
        except (httpcore.NetworkError, httpcore.RemoteProtocolError, OSError) as error:
            raise PreviewError(
                ApiError(
                    f"the server on port {target.port} in sandbox {target.sandbox_id} "
                    f"did not answer properly: {error or type(error).__name__}",
                    status=502,
                ),
                "Bad answer from the sandbox",
            ) from None
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (name, value)
                        for name, value in response.headers
                        if name.lower() not in HOP_BY_HOP and name.lower() != b"transfer-encoding"
                    ],
                }
            )
            async with anyio.create_task_group() as group:
                if body_read:
                    group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
                # Each piece goes out before the next is read: uvicorn's send waits for
                # the client to take it, so a large answer is never held in memory.
                async for piece in response.aiter_stream():
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                    # At most one write a second: a long stream keeps the sandbox awake.
                    self.engine.touch(target.sandbox_id)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()
        except (httpcore.NetworkError, httpcore.RemoteProtocolError) as error:
            log.info("preview of port %s in %s cut: %s", target.port, target.sandbox_id, error)
        finally:
            await response.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, target: Target) -> None:
        dialer, _ = self._connections()
        client = WebSocket(scope, receive, send)
        try:
            sock = await dialer.connect(target.running, target.port)
        except (PortClosed, NotRunning, TimeoutError) as error:
            raise _unreachable(target, error) from None
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = f"?{target.query.decode('latin-1')}" if target.query else ""
        forwarded = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in target.headers
            if name in WS_HEADERS
        ]
        origin = dict(target.headers).get(b"origin")
        try:
            upstream = await ws_connect(
                f"ws://localhost:{target.port}{path}{query}",
                sock=sock,
                subprotocols=scope.get("subprotocols") or None,
                additional_headers=forwarded,
                origin=origin.decode("latin-1") if origin else None,  # type: ignore[arg-type]
                user_agent_header=None,
                compression=None,
                max_size=MAX_WS_MESSAGE,
                open_timeout=10,
            )
        except websockets.InvalidStatus as refused:
            sock.close()
            status = refused.response.status_code
            raise PreviewError(
                ApiError(f"the server on port {target.port} refused the WebSocket", status=status),
                "WebSocket refused",
            ) from None
        except (OSError, TimeoutError, websockets.InvalidHandshake) as error:
            sock.close()
            raise PreviewError(
                ApiError(
                    f"the server on port {target.port} did not accept a WebSocket: {error}",
                    status=502,
                ),
                "WebSocket refused",
            ) from None
        async with upstream:
            await client.accept(subprotocol=upstream.subprotocol)
            await _relay(receive, send, upstream)


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Stop relaying an endless answer once its client has gone."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _relay(receive: Receive, send: Send, upstream: ClientConnection) -> None:
    """Frames both ways until either side closes; the close code goes across."""

    async def from_client(group: anyio.abc.TaskGroup) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                await upstream.send(text if text is not None else message.get("bytes") or b"")
            elif message["type"] == "websocket.disconnect":
                code = message.get("code", 1000)
                await upstream.close(code=code if _sendable(code) else 1000)
                group.cancel_scope.cancel()
                return

    async def from_upstream(group: anyio.abc.TaskGroup) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in upstream:
                if isinstance(frame, str):
                    await send({"type": "websocket.send", "text": frame})
                else:
                    await send({"type": "websocket.send", "bytes": frame})
        code = upstream.close_code or 1000
        reason = upstream.close_reason or ""
        with contextlib.suppress(OSError, RuntimeError):
            await send(
                {
                    "type": "websocket.close",
                    "code": code if _sendable(code) else (1011 if code == 1006 else 1000),
                    "reason": reason,
                }
            )
        group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(from_client, group)
        group.start_soon(from_upstream, group)


def _query_key(piece: bytes) -> str:
    return urllib.parse.unquote_plus(piece.partition(b"=")[0].decode("latin-1"))


def _sendable(code: int) -> bool:
    """Whether a close code may be sent in a close frame (RFC 6455 7.4)."""
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def _upstream_headers(scope: Scope, target: Target) -> list[tuple[bytes, bytes]]:
    """The client's headers as the sandbox's server sees them (as behind Daytona's proxy:
    Host is localhost:PORT, the original host in X-Forwarded-Host)."""
    headers = [
        (name, value)
        for name, value in target.headers
        if name not in HOP_BY_HOP and name != b"host" and not name.startswith(b"x-forwarded-")
    ]
    original = dict(target.headers).get(b"host", b"")
    client = scope.get("client")
    headers += [
        (b"host", f"localhost:{target.port}".encode()),
        (b"x-forwarded-host", original),
        (b"x-forwarded-proto", scope.get("scheme", "http").encode()),
    ]
    if client:
        headers.append((b"x-forwarded-for", str(client[0]).encode()))
    return headers


def _unreachable(target: Target, error: Exception) -> PreviewError:
    """Why the port could not be reached, as the page the client gets."""
    if isinstance(error, NotRunning):
        message = f"Sandbox {target.sandbox_id} is not started: {error}"
        return PreviewError(ApiError(message, status=409), "Sandbox not started")
    if isinstance(error, TimeoutError):
        message = f"Port {target.port} in sandbox {target.sandbox_id} did not accept in time"
        return PreviewError(ApiError(message, status=504), "No answer")
    return PreviewError(
        ApiError(
            f"Nothing is listening on port {target.port} in sandbox {target.sandbox_id}. Start "
            f"a server on that port inside the sandbox (on 0.0.0.0 or 127.0.0.1) and reload.",
            status=502,
        ),
        "Nothing listening",
    )


async def _refuse(scope: Scope, receive: Receive, send: Send, refused: PreviewError) -> None:
    """An error page for a browser, Daytona's error body for anything else."""
    error = refused.error
    path = scope.get("path", "")
    accept = dict(scope.get("headers", [])).get(b"accept", b"")
    response: Response
    if b"text/html" in accept:
        response = HTMLResponse(_page(refused.title, error.message), status_code=error.status)
    else:
        response = JSONResponse(error.body(path, iso(now())), status_code=error.status)
    if scope["type"] == "websocket":
        await WebSocket(scope, receive, send).send_denial_response(response)
    else:
        await response(scope, receive, send)


def _page(title: str, message: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<body style='font:16px system-ui,sans-serif;max-width:40em;margin:4em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )


class PreviewHosts:
    """ASGI middleware: requests for a preview host go to the sandbox, the rest to the app."""

    def __init__(self, app: ASGIApp, previews: Previews) -> None:
        self.app = app
        self.previews = previews

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
            match = PREVIEW_HOST.match(host)
            if match:
                await self.previews.serve(scope, receive, send, int(match.group(1)), match.group(2))
                return
        await self.app(scope, receive, send)
        if scope["type"] == "lifespan":
            await self.previews.aclose()


# -- the control plane's routes ---------------------------------------------------------


def _previews(request: Request) -> Previews:
    previews: Previews = request.app.state.previews
    return previews


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise BadRequest("Invalid port")
    return int(raw)


def _url(request: Request, port: int, label: str) -> str:
    """The preview host on the port the caller reached the engine at."""
    reached = request.url.port
    return f"{request.url.scheme}://{port}-{label}.localhost" + (f":{reached}" if reached else "")


async def preview_url(request: Request) -> Response:
    """GET /sandbox/{id}/ports/{port}/preview-url: ``{sandboxId, url, token}``."""
    port = _port(request.path_params["port"])
    previews = _previews(request)
    record = previews.engine.find(request.path_params["id"])
    return JSONResponse(
        {
            "sandboxId": record.id,
            "url": _url(request, port, record.id),
            "token": previews.token_for(record.id),
        }
    )


async def signed_preview_url(request: Request) -> Response:
    """GET …/signed-preview-url?expiresInSeconds=: ``{sandboxId, port, token, url}``."""
    port = _port(request.path_params["port"])
    raw = request.query_params.get("expiresInSeconds", "")
    try:
        expires_in = int(raw) if raw else DEFAULT_EXPIRY
    except ValueError:
        raise BadRequest("expiresInSeconds must be an integer") from None
    if not 1 <= expires_in <= MAX_EXPIRY:
        raise BadRequest("expiresInSeconds must be between 1 second and 24 hours")
    previews = _previews(request)
    record = previews.engine.find(request.path_params["id"])
    token = previews.sign(record.id, port, expires_in)
    return JSONResponse(
        {"sandboxId": record.id, "port": port, "token": token, "url": _url(request, port, token)}
    )


async def expire_signed_preview_url(request: Request) -> Response:
    """POST …/signed-preview-url/{token}/expire: the token stops working at once."""
    port = _port(request.path_params["port"])
    previews = _previews(request)
    record = previews.engine.find(request.path_params["id"])
    previews.expire(record.id, port, request.path_params["token"])
    return Response(status_code=200)


def routes() -> list[BaseRoute]:
    """The preview routes, mounted at /api."""
    base = "/sandbox/{id}/ports/{port}"
    return [
        Route(f"{base}/preview-url", preview_url, methods=["GET"]),
        Route(f"{base}/signed-preview-url", signed_preview_url, methods=["GET"]),
        Route(
            f"{base}/signed-preview-url/{{token}}/expire",
            expire_signed_preview_url,
            methods=["POST"],
        ),
    ]


def install(app: Starlette, engine: Engine, api_key: str) -> None:
    """Serve preview hosts in front of ``app`` (call after its other middleware)."""
    previews = Previews(engine, api_key)
    app.state.previews = previews
    app.add_middleware(PreviewHosts, previews=previews)


__all__ = ["PreviewHosts", "Previews", "install", "routes"]
