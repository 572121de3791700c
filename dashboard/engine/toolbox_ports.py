"""Ports inside a sandbox: which ones listen, and a way to connect to them.

The toolbox's ``/port`` routes read the sandbox's own ``/proc/<pid>/net/tcp*`` (that
file shows the network namespace of the process it belongs to), and
:meth:`SandboxDialer.connect` opens a TCP connection from the engine to a port inside
the sandbox, for the preview proxy. Computer use and LSP, which the daemon serves and the engine
does not, answer a clear 503 here rather than a bare 404.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.engine.errors import ApiError, BadRequest, Conflict
from dashboard.engine.lifecycle import Engine
from dashboard.engine.runtime import NotRunning, RunningSandbox

NS_GET_USERNS = 0xB701  # ioctl: the user namespace that owns a namespace
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column
IN_USE_RANGE = (3000, 9999)  # the daemon's bounds for /port/{port}/in-use
CONNECT_TIMEOUT = 5.0
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class PortClosed(Exception):
    """Nothing listens on the port inside the sandbox."""


def _entered_socket(netns: str, owner: tuple[int, int], family: int, home: int) -> socket.socket:
    """A TCP socket made inside the network namespace ``netns``.

    The namespace must belong to the user namespace ``owner`` (device, inode): a pid
    that was reused after its sandbox stopped can never lead into anything else.
    ``setns`` moves only the calling thread and a socket keeps the namespace it was
    made in, so the one thread that runs this enters, makes the socket and returns to
    the engine's own namespace (``home``) straight away.
    """
    target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        userns = fcntl.ioctl(target, NS_GET_USERNS)
        try:
            found = os.fstat(userns)
        finally:
            os.close(userns)
        if (found.st_dev, found.st_ino) != owner:
            raise NotRunning("the sandbox stopped")
        os.setns(target, os.CLONE_NEWNET)
        try:
            return socket.socket(family, socket.SOCK_STREAM)
        finally:
            os.setns(home, os.CLONE_NEWNET)
    finally:
        os.close(target)


class SandboxDialer:
    """Connects to ports inside sandboxes from a thread of its own.

    One thread, never the event loop's nor a shared worker's, ever changes namespace,
    so no other code can run while a thread is inside a sandbox's network.
    """

    def __init__(self) -> None:
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbar-netns")

    async def connect(self, running: RunningSandbox, port: int) -> socket.socket:
        """A non-blocking socket connected to ``port`` on the sandbox's loopback.

        IPv4 first, then ``::1`` for a server bound only there. Raises
        :class:`PortClosed` when neither answers.
        """
        loop = asyncio.get_running_loop()
        netns = f"/proc/{running.init_pid}/ns/net"
        owner_stat = os.fstat(running.userns_fd)
        owner = (owner_stat.st_dev, owner_stat.st_ino)
        for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                sock = await loop.run_in_executor(
                    self._thread, _entered_socket, netns, owner, family, self._home
                )
            except FileNotFoundError:
                raise NotRunning("the sandbox stopped") from None
            sock.setblocking(False)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await loop.sock_connect(sock, (address, port))
                return sock
            except OSError as error:
                sock.close()
                if error.errno not in (errno.ECONNREFUSED, errno.EADDRNOTAVAIL, errno.ENETUNREACH):
                    raise
            except TimeoutError:
                sock.close()
                raise
        raise PortClosed(f"nothing is listening on port {port} in the sandbox")

    def close(self) -> None:
        """Stop the thread and drop the namespace handle."""
        self._thread.shutdown(wait=False)
        os.close(self._home)


def listening_ports(init_pid: int) -> list[int]:
    """TCP ports in LISTEN state in the sandbox's network namespace, sorted."""
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{init_pid}/net/{name}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue  # no IPv6 in this namespace, or the sandbox just stopped
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _init_pid(request: Request) -> int:
    """The host pid of the started sandbox in the path; the call counts as activity."""
    engine = _engine(request)
    record = engine.find_started(request.path_params["sandbox_id"])
    engine.touch(record.id)
    try:
        return engine.runtime.get(record.id).init_pid
    except NotRunning as error:
        raise Conflict(str(error)) from None


async def ports(request: Request) -> Response:
    """GET /port: ``{ports: [...]}``, every TCP port listening inside the sandbox."""
    pid = _init_pid(request)
    return JSONResponse({"ports": await to_thread.run_sync(listening_ports, pid)})


async def port_in_use(request: Request) -> Response:
    """GET /port/{port}/in-use: ``{isInUse}``, with the daemon's 3000-9999 bounds."""
    raw = request.path_params["port"]
    if not raw.isdigit():
        raise BadRequest("invalid port: must be a number between 3000 and 9999")
    port = int(raw)
    if not IN_USE_RANGE[0] <= port <= IN_USE_RANGE[1]:
        raise BadRequest("port out of range: must be between 3000 and 9999")
    pid = _init_pid(request)
    return JSONResponse({"isInUse": port in await to_thread.run_sync(listening_ports, pid)})


def _unavailable(feature: str, why: str) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        _engine(request).find(request.path_params["sandbox_id"])  # an unknown sandbox is a 404
        raise ApiError(f"{feature} is not available in the embedded engine: {why}", status=503)

    return answer


def routes() -> list[BaseRoute]:
    """The port routes and the features the engine answers as unavailable."""
    base = "/{sandbox_id}"
    computer_use = _unavailable(
        "Computer use", "its sandboxes have no display server (X11/VNC); use Daytona for it"
    )
    lsp = _unavailable(
        "The language server protocol (LSP)",
        "the default image ships no language server; run one in a session instead",
    )
    return [
        Route(f"{base}/port", ports, methods=["GET"]),
        Route(f"{base}/port/{{port}}/in-use", port_in_use, methods=["GET"]),
        Route(f"{base}/computeruse", computer_use, methods=ALL_METHODS),
        Route(f"{base}/computeruse/{{rest:path}}", computer_use, methods=ALL_METHODS),
        Route(f"{base}/lsp/{{rest:path}}", lsp, methods=ALL_METHODS),
    ]


__all__ = ["PortClosed", "SandboxDialer", "listening_ports", "routes"]
