"""SSH access to sandboxes: Daytona's tokens and an SSH gateway inside the engine.

``POST /api/sandbox/{id}/ssh-access`` hands out a token; ``ssh -p PORT TOKEN@HOST``
then reaches the engine's own SSH server (asyncssh), which takes the user name as the
token, as Daytona's gateway does. A session is a shell or command entered into the
sandbox as its user exactly as the toolbox's terminals are (``Runtime.spawn``), and
SFTP (hence ``scp``) works on the sandbox's files through the same ``openat2``
confinement as the files API (:mod:`dashboard.engine.fs`). Only a SHA-256 of each token
is stored; tokens expire, and creating one revokes the sandbox's others (Daytona's
rule). Every session is written to the audit log with its token id and duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import posixpath
import secrets
import sqlite3
import stat
import string
import struct
import termios
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.engine.api import sandbox_dto
from dashboard.engine.errors import ApiError, BadRequest
from dashboard.engine.fs import SandboxFS
from dashboard.engine.lifecycle import Engine
from dashboard.engine.runtime import NotRunning, RuntimeError_, rootfs
from dashboard.engine.store import iso, now
from dashboard.engine.toolbox import BASE_ENV
from dashboard.engine.toolbox_process import SHELL
from dashboard.engine.validation import Query

log = logging.getLogger("sandbar.engine")
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS ssh_access (
    id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ssh_access_sandbox ON ssh_access (sandbox_id);
"""
# Daytona's tokens: 32 characters of nanoid's alphabet without "_" and "-" (which some
# command lines would take for options or split on).
TOKEN_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 32
DEFAULT_MINUTES = 60  # Daytona's default
MAX_MINUTES = 366 * 24 * 60
HOST_KEY_FILE = "ssh_host_ed25519_key"
READ_SIZE = 64 << 10
PIPE_SIZE = 1 << 20  # a command's stdout pipe (Linux's default most a user may ask for)
# After a command exits, its output is passed on until none has come for this long
# while the client was ready for more (background children may keep the pipe open for
# ever); a slow client gets all of it, however long it takes.
DRAIN_AFTER_EXIT = 0.5
MAX_SFTP_HANDLES = 256  # open files and directories per SFTP session
NOBODY = 65534  # how the sandbox sees an owner its user namespace does not map
# States a sandbox's processes do not survive: its SSH connections end on entering one.
DOWN = frozenset(
    ("stopping", "stopped", "archiving", "archived", "destroying", "destroyed", "error")
)
# Client variables taken over into a session, as Debian's sshd accepts (AcceptEnv).
ACCEPTED_ENV = ("LANG", "LC_")


# -- tokens -------------------------------------------------------------------------


@dataclass(frozen=True)
class SshAccess:
    """One access grant (the token itself is never kept)."""

    id: str
    sandbox_id: str
    expires_at: str
    created_at: str
    updated_at: str

    def to_json(self, token: str, command: str) -> dict[str, Any]:
        """Daytona's SshAccessDto."""
        return {
            "id": self.id,
            "sandboxId": self.sandbox_id,
            "token": token,
            "expiresAt": self.expires_at,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "sshCommand": command,
        }


def token_hash(token: str) -> str:
    """What is stored for a token: it has ~190 random bits, so a plain hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


class AccessStore:
    """The ssh_access table, in the engine's own database."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.db.executescript(SCHEMA)

    def create(self, sandbox_id: str, minutes: float) -> tuple[SshAccess, str, list[str]]:
        """A new grant, its token, and the ids of the grants it replaced."""
        replaced = self.revoke(sandbox_id)
        moment = now()
        self.db.execute("DELETE FROM ssh_access WHERE expires_at < ?", (iso(moment),))
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
        access = SshAccess(
            id=str(uuid.uuid4()),
            sandbox_id=sandbox_id,
            expires_at=iso(moment + timedelta(minutes=minutes)),
            created_at=iso(moment),
            updated_at=iso(moment),
        )
        self.db.execute(
            "INSERT INTO ssh_access (id, sandbox_id, token_hash, expires_at, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (access.id, sandbox_id, token_hash(token), access.expires_at, access.created_at,
             access.updated_at),
        )  # fmt: skip
        return access, token, replaced

    def revoke(self, sandbox_id: str, token: str | None = None) -> list[str]:
        """Forget one grant of a sandbox (by token) or all of them; the ids forgotten."""
        where, params = "sandbox_id = ?", [sandbox_id]
        if token is not None:
            where += " AND token_hash = ?"
            params.append(token_hash(token))
        rows = self.db.execute(f"DELETE FROM ssh_access WHERE {where} RETURNING id", params)  # noqa: S608
        return [row[0] for row in rows.fetchall()]

    def find(self, token: str) -> SshAccess | None:
        """The grant a token stands for, unless it has expired or been revoked."""
        row = self.db.execute(
            "SELECT id, sandbox_id, expires_at, created_at, updated_at FROM ssh_access"
            " WHERE token_hash = ? AND expires_at > ?",
            (token_hash(token), iso(now())),
        ).fetchone()
        return SshAccess(*row) if row else None


_stores: weakref.WeakKeyDictionary[Engine, AccessStore] = weakref.WeakKeyDictionary()


def _access_store(engine: Engine) -> AccessStore:
    """The engine's grants (the table is made on first use)."""
    store = _stores.get(engine)
    if store is None:
        store = _stores[engine] = AccessStore(engine.store.db)
    return store


def find_access(engine: Engine, token: str) -> SshAccess | None:
    """A live grant whose sandbox still exists."""
    if not token or len(token) > 256:
        return None
    access = _access_store(engine).find(token)
    if access is None or engine.store.get(access.sandbox_id) is None:
        return None
    return access


# -- routes -------------------------------------------------------------------------


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _minutes(query: Query) -> float:
    raw = query.string("expiresInMinutes")
    if raw is None or raw == "":
        return DEFAULT_MINUTES
    try:
        minutes = float(raw)
    except ValueError:
        raise BadRequest("expiresInMinutes must be a number of minutes") from None
    if not 0 < minutes <= MAX_MINUTES:  # also refuses NaN
        raise BadRequest(f"expiresInMinutes must be more than 0 and at most {MAX_MINUTES}")
    return minutes


def ssh_command(token: str, host: str, port: int) -> str:
    """Daytona's sshCommand: no -p for port 22."""
    host = host or "127.0.0.1"
    return f"ssh {token}@{host}" if port == 22 else f"ssh -p {port} {token}@{host}"


async def create_ssh_access(request: Request) -> Response:
    """POST /sandbox/{id}/ssh-access?expiresInMinutes=: SshAccessDto (200, as Daytona)."""
    engine = _engine(request)
    minutes = _minutes(Query(request.query_params, {"expiresInMinutes"}))
    gateway: Gateway | None = getattr(request.app.state, "ssh_gateway", None)
    if gateway is None:
        raise ApiError(
            "SSH access is off in this engine: start it with SANDBAR_ENGINE_SSH_PORT "
            "(e.g. 2222) to run its SSH gateway",
            status=503,
        )
    record = engine.find(request.path_params["id"])
    access, token, replaced = _access_store(engine).create(record.id, minutes)
    gateway.disconnect(replaced)
    command = ssh_command(token, request.url.hostname or "", gateway.port)
    return JSONResponse(access.to_json(token, command))


async def revoke_ssh_access(request: Request) -> Response:
    """DELETE /sandbox/{id}/ssh-access?token=: one token, or every one; the Sandbox."""
    engine = _engine(request)
    token = Query(request.query_params, {"token"}).string("token")
    record = engine.find(request.path_params["id"])
    revoked = _access_store(engine).revoke(record.id, token or None)
    gateway: Gateway | None = getattr(request.app.state, "ssh_gateway", None)
    if gateway is not None:
        gateway.disconnect(revoked)
    return JSONResponse(sandbox_dto(record, request))


async def validate_ssh_access(request: Request) -> Response:
    """GET /sandbox/ssh-access/validate?token=: {valid, sandboxId} (null when invalid)."""
    token = Query(request.query_params, {"token"}).string("token", required=True) or ""
    access = find_access(_engine(request), token)
    if access is None:
        return JSONResponse({"valid": False, "sandboxId": None})
    return JSONResponse({"valid": True, "sandboxId": access.sandbox_id})


def routes() -> list[BaseRoute]:
    """The SSH access routes, mounted at /api."""
    return [
        Route("/sandbox/ssh-access/validate", validate_ssh_access, methods=["GET"]),
        Route("/sandbox/{id}/ssh-access", create_ssh_access, methods=["POST"]),
        Route("/sandbox/{id}/ssh-access", revoke_ssh_access, methods=["DELETE"]),
    ]


# -- the gateway --------------------------------------------------------------------


def load_host_key(directory: Path) -> asyncssh.SSHKey:
    """The gateway's ed25519 host key, made once (mode 0600) so clients can pin it."""
    path = directory / HOST_KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519", comment="sandbar-engine")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another start won the race: use its key
        return asyncssh.read_private_key(str(path))
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.export_private_key())
    return key


def _set_winsize(master: int, cols: int, rows: int, width: int = 0, height: int = 0) -> None:
    if cols > 0 and rows > 0:
        size = struct.pack("HHHH", min(rows, 0xFFFF), min(cols, 0xFFFF), width, height)
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)


async def _ready(fd: int, *, write: bool = False) -> None:
    """Wait until a non-blocking descriptor can be read (or written)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await waiter
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _ready(fd, write=True)


@dataclass
class _Flow:
    """How a session's output is going: bytes passed on so far, and whether it is
    waiting for the client (which a drain after exit waits for, however long)."""

    moved: int = 0
    waiting_for_client: bool = False

    async def send(self, writer: Any, data: bytes) -> None:
        """Pass ``data`` on at the client's pace."""
        writer.write(data)
        self.waiting_for_client = True
        try:
            await writer.drain()
        finally:
            self.waiting_for_client = False
        self.moved += len(data)


@dataclass
class _Session:
    """What the audit entry of one session needs."""

    access: SshAccess
    kind: str  # shell, exec or sftp
    peer: str | None
    client: str | None
    started: float


class _Connection(asyncssh.SSHServer):
    """One client connection: its user name is the token."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.conn: asyncssh.SSHServerConnection | None = None
        self.access: SshAccess | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.forget(self)

    def begin_auth(self, username: str) -> bool:
        """No further authentication for a live token; a refusal for any other."""
        assert self.conn is not None
        access = find_access(self.gateway.engine, username)
        if access is None:
            self.conn.send_auth_banner(
                "Sandbar: this SSH access token is invalid, expired or revoked; "
                "create a new one (POST /api/sandbox/{id}/ssh-access).\r\n"
            )
            peer = self.conn.get_extra_info("peername")
            self.gateway.engine.audit.record(
                actor="ssh",
                action="ssh_login_refused",
                status_code=401,
                error_message="invalid, expired or revoked token",
                ip_address=peer[0] if peer else None,
                user_agent=self.conn.get_extra_info("client_version"),
                source="ssh",
            )
            return True
        self.access = access
        self.conn.set_extra_info(sandbar_access=access)
        self.gateway.track(self)
        return False

    # Only public keys are "offered", and none is ever accepted: a refused token then
    # reads "Permission denied (publickey)" rather than prompting for a password.
    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False


class Gateway:
    """The SSH server: one per engine, on the engine's event loop."""

    def __init__(self, engine: Engine, host: str, port: int) -> None:
        self.engine = engine
        self.host = host
        self.requested_port = port
        self.port = port
        self._server: asyncssh.SSHAcceptor | None = None
        self._connections: set[_Connection] = set()

    async def start(self) -> None:
        """Listen (port 0: any free one, then :attr:`port` says which)."""
        # asyncssh logs each user name at INFO, and a user name here is a token.
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        key = load_host_key(self.engine.config.engine_dir)
        try:
            self._server = await self._listen(key)
        except OSError as error:
            raise OSError(
                error.errno,
                f"the SSH gateway cannot listen on {self.host} port {self.requested_port} "
                f"(SANDBAR_ENGINE_SSH_PORT): {error.strerror or error}",
            ) from error
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self.engine.observers.append(self._on_event)
        log.info("SSH gateway on %s port %d", self.host, self.port)

    async def _listen(self, key: asyncssh.SSHKey) -> asyncssh.SSHAcceptor:
        return await asyncssh.create_server(
            lambda: _Connection(self),
            self.host,
            self.requested_port,
            server_host_keys=[key],
            process_factory=self._serve_process,
            sftp_factory=self._sftp,
            allow_scp=True,
            encoding=None,
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            keepalive_interval=60,
        )

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        with contextlib.suppress(ValueError):
            self.engine.observers.remove(self._on_event)
        for connection in list(self._connections):
            if connection.conn is not None:
                connection.conn.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- connections -------------------------------------------------------------

    def track(self, connection: _Connection) -> None:
        """Remember an authenticated connection (to end it on revoke or stop)."""
        self._connections.add(connection)

    def forget(self, connection: _Connection) -> None:
        """The connection has gone."""
        self._connections.discard(connection)

    def _drop(self, keep: Callable[[SshAccess], bool]) -> None:
        for connection in list(self._connections):
            if connection.access is not None and not keep(connection.access):
                if connection.conn is not None:
                    connection.conn.close()
                self._connections.discard(connection)

    def disconnect(self, access_ids: list[str]) -> None:
        """End the connections made with revoked tokens."""
        if access_ids:
            gone = set(access_ids)
            self._drop(lambda access: access.id not in gone)

    def _on_event(self, event: str, *details: Any) -> None:
        # A sandbox that stops takes its SSH connections with it (its processes are
        # gone, and an SFTP session must not hold its files open). A fork, snapshot or
        # resize leaves its processes running, and so its sessions.
        if event == "sandbox.state.updated" and len(details) >= 3 and details[2] in DOWN:
            sandbox_id = details[0].id
            self._drop(lambda access: access.sandbox_id != sandbox_id)

    # -- sessions ----------------------------------------------------------------

    def audit(self, session: _Session, status: int, exit_status: int | None) -> None:
        metadata = {
            "sshAccessId": session.access.id,
            "kind": session.kind,
            "durationSeconds": round(time.monotonic() - session.started, 3),
            "exitStatus": exit_status,
        }
        self.engine.audit.record(
            actor=session.access.id,
            action="ssh_session",
            target_type="sandbox",
            target_id=session.access.sandbox_id,
            status_code=status,
            ip_address=session.peer,
            user_agent=session.client,
            source="ssh",
            metadata=json.dumps(metadata),
        )

    def _session(self, chan: Any, kind: str) -> _Session:
        peer = chan.get_extra_info("peername")
        return _Session(
            chan.get_extra_info("sandbar_access"),
            kind,
            peer[0] if peer else None,
            chan.get_extra_info("client_version"),
            time.monotonic(),
        )

    def not_started(self, sandbox_id: str) -> str | None:
        """Why a sandbox cannot take a session now, or None."""
        record = self.engine.store.get(sandbox_id)
        if record is None:
            return f"Sandbox {sandbox_id} no longer exists."
        if record.state != "started" or not self.engine.runtime.is_running(record.id):
            return (
                f"Sandbox {record.id} is not started (state: {record.state}). "
                "Start it, then connect again."
            )
        return None

    async def _serve_process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        kind = "exec" if process.command is not None else "shell"
        session = self._session(process.channel, kind)
        refusal = self.not_started(session.access.sandbox_id)
        if refusal is not None:
            process.stderr.write(f"{refusal}\r\n".encode())
            process.exit(1)
            self.audit(session, 409, 1)
            return
        try:
            # An open session keeps auto-stop away, as Daytona's gateway does by
            # refreshing the sandbox's activity while connected.
            with self.engine.busy(session.access.sandbox_id):
                code = await self._run(process, session.access.sandbox_id)
        except (NotRunning, RuntimeError_, OSError, ApiError) as error:  # e.g. deleted meanwhile
            process.stderr.write(f"could not start a shell in the sandbox: {error}\r\n".encode())
            code = 1
        with contextlib.suppress(OSError, asyncssh.Error):
            process.exit(code)
        self.audit(session, 200, code)

    def _env(self, process: asyncssh.SSHServerProcess[bytes], sandbox_id: str) -> dict[str, str]:
        record = self.engine.find(sandbox_id)
        accepted = {
            key: value
            for key, value in process.env.items()
            if isinstance(key, str) and isinstance(value, str)
            and key.startswith(ACCEPTED_ENV) and "\0" not in key + value
        }  # fmt: skip
        env = {**BASE_ENV, **record.env, **accepted}
        if process.term_type:
            env["TERM"] = process.term_type
        return env

    async def _run(self, process: asyncssh.SSHServerProcess[bytes], sandbox_id: str) -> int:
        env = self._env(process, sandbox_id)
        command = process.command
        if process.term_type:
            argv = list(SHELL) if command is None else ["/bin/bash", "-c", command]
            return await self._run_pty(process, sandbox_id, argv, env)
        if command is None:  # a shell without a terminal (ssh -T): bash reads stdin
            command = "exec /bin/bash -l"
        return await self._run_pipes(process, sandbox_id, command, env)

    async def _run_pty(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        sandbox_id: str,
        argv: list[str],
        env: dict[str, str],
    ) -> int:
        child = await self.engine.runtime.spawn(sandbox_id, argv, env=env, pty=True)
        master = child.pty_master
        assert master is not None
        os.set_blocking(master, False)
        cols, rows, width, height = process.term_size
        _set_winsize(master, cols, rows, width, height)
        flow = _Flow()

        async def output() -> None:
            while True:
                await _ready(master)
                try:
                    data = os.read(master, READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: every holder of the terminal has gone
                    return
                if not data:
                    return
                await flow.send(process.stdout, data)

        async def keys() -> None:
            while True:
                try:
                    data = await process.stdin.read(READ_SIZE)
                except asyncssh.TerminalSizeChanged as change:
                    _set_winsize(master, change.width, change.height, change.pixwidth,
                                 change.pixheight)  # fmt: skip
                    continue
                except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                    continue
                if not data:
                    return
                self.engine.touch(sandbox_id)
                await _write_all(master, data)

        try:
            return await self._supervise(process, child, output(), keys(), flow)
        finally:
            child.release()

    async def _run_pipes(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        sandbox_id: str,
        command: str,
        env: dict[str, str],
    ) -> int:
        # The runtime gives a command one pipe for stdout and stderr together; these two
        # keep them apart, under numbers the child inherits. stdout's is made large: each
        # pipe-full costs the command a wake-up inside its CPU quota, which on a busy
        # machine held `ssh … cat` to about half of scp's rate at the usual 64 KiB.
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(out_w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        script = f'exec >&{out_w} 2>&{err_w} {out_w}>&- {err_w}>&-; exec /bin/bash -c "$0"'
        try:
            child = await self.engine.runtime.spawn(
                sandbox_id, ["/bin/bash", "-c", script, command], env=env, stdin=True,
                pass_fds=(out_w, err_w),
            )  # fmt: skip
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        loop = asyncio.get_running_loop()
        readers, transports = [], []
        for fd in (out_r, err_r):
            reader = asyncio.StreamReader(limit=READ_SIZE)
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r), os.fdopen(fd, "rb", 0)
            )
            readers.append(reader)
            transports.append(transport)

        flow = _Flow()

        async def relay(reader: asyncio.StreamReader | None, writer: Any) -> None:
            while reader is not None and (data := await reader.read(READ_SIZE)):
                await flow.send(writer, data)

        async def output() -> None:
            await asyncio.gather(
                relay(readers[0], process.stdout), relay(readers[1], process.stderr)
            )

        async def feed() -> None:
            stdin = child.stdin
            if stdin is None:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                while data := await process.stdin.read(READ_SIZE):
                    stdin.write(data)
                    await stdin.drain()
                stdin.close()

        try:
            return await self._supervise(process, child, output(), feed(), flow)
        finally:
            for transport in transports:
                transport.close()
            child.release()

    async def _supervise(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        child: Any,
        output: Any,
        feed: Any,
        flow: _Flow,
    ) -> int:
        """Relay until the command exits (then pass on its last output) or the client
        goes away (then kill it, as a hang-up would)."""
        out_task = asyncio.ensure_future(output)
        in_task = asyncio.ensure_future(feed)
        exit_task = asyncio.ensure_future(child.wait())
        closed_task = asyncio.ensure_future(process.wait_closed())
        try:
            await asyncio.wait({exit_task, closed_task}, return_when=asyncio.FIRST_COMPLETED)
            if not exit_task.done():
                child.kill()
                try:
                    return int(await asyncio.wait_for(exit_task, 10))
                except TimeoutError:
                    return 137
            code = int(exit_task.result())
            moved = -1
            while not out_task.done() and (flow.moved != moved or flow.waiting_for_client):
                moved = flow.moved
                # A relay that failed (the client went away) ends the drain too.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(out_task), DRAIN_AFTER_EXIT)
            return code
        finally:
            for task in (out_task, in_task, closed_task, exit_task):
                task.cancel()
            for task in (out_task, in_task, closed_task, exit_task):
                with contextlib.suppress(BaseException):
                    await task

    def _sftp(self, chan: asyncssh.SSHServerChannel[bytes]) -> SandboxSFTP:
        return SandboxSFTP(chan, self, self._session(chan, "sftp"))


# -- SFTP ---------------------------------------------------------------------------


@contextlib.contextmanager
def _opened(fs: SandboxFS, path: str, flags: int) -> Iterator[int]:
    fd = fs.open_fd(path, flags)
    try:
        yield fd
    finally:
        os.close(fd)


def _name(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


class SandboxSFTP(asyncssh.SFTPServer):
    """SFTP on a sandbox's files as its user sees them (also what ``scp`` uses).

    Each operation resolves its path inside the sandbox's root with ``openat2``
    (:class:`SandboxFS`), in a worker thread whose file-system uid is the sandbox
    user's, so neither ``..`` nor a symbolic link leaves the sandbox and permissions
    are the user's own.
    """

    def __init__(self, chan: Any, gateway: Gateway, session: _Session) -> None:
        super().__init__(chan)
        self.gateway = gateway
        self.session = session
        self.sandbox_id = session.access.sandbox_id
        self.handles: set[int] = set()
        self.closed = False

    # -- plumbing ----------------------------------------------------------------

    @asynccontextmanager
    async def _fs(self) -> AsyncGenerator[SandboxFS]:
        refusal = self.gateway.not_started(self.sandbox_id)
        if refusal is not None:
            raise asyncssh.SFTPFailure(refusal)
        try:
            running = self.gateway.engine.runtime.get(self.sandbox_id)
        except NotRunning as error:
            raise asyncssh.SFTPFailure(str(error)) from None
        root_fd = os.dup(running.root_fd)  # valid even if the sandbox stops meanwhile
        try:
            yield SandboxFS(root_fd, running.spec.uid, rootfs.HOME)
        finally:
            os.close(root_fd)

    async def _do(self, operation: Callable[[SandboxFS], T]) -> T:
        self.gateway.engine.touch(self.sandbox_id)
        async with self._fs() as fs:
            return await asyncio.to_thread(fs.run, lambda: operation(fs))

    def _path(self, fs: SandboxFS, path: bytes) -> str:
        text = _name(path) or "."
        if "\0" in text:
            raise asyncssh.SFTPBadMessage("path contains NUL")
        return fs.absolute(text)

    def _parent(self, fs: SandboxFS, path: bytes) -> tuple[int, str]:
        """An O_PATH handle on the parent directory (resolved in the sandbox), and the
        last component, which the caller uses with ``dir_fd`` and never follows."""
        absolute = self._path(fs, path)
        parent, name = posixpath.split(absolute)
        if not name:
            raise asyncssh.SFTPFailure("not allowed on the root directory")
        return fs.open_fd(parent or "/", os.O_PATH | os.O_DIRECTORY), name

    def _attrs(self, fs: SandboxFS, st: os.stat_result) -> asyncssh.SFTPAttrs:
        attrs = asyncssh.SFTPAttrs.from_local(st)
        # Owners as the sandbox sees them: its host uid is its user; others are unmapped.
        attrs.uid = rootfs.SANDBOX_UID if st.st_uid == fs.uid else NOBODY
        attrs.gid = rootfs.SANDBOX_UID if st.st_gid == fs.uid else NOBODY
        return attrs

    def format_user(self, uid: int | None) -> str:
        return rootfs.SANDBOX_USER if uid == rootfs.SANDBOX_UID else "nobody"

    def format_group(self, gid: int | None) -> str:
        return rootfs.SANDBOX_USER if gid == rootfs.SANDBOX_UID else "nogroup"

    # -- paths and attributes ----------------------------------------------------

    async def realpath(self, path: bytes) -> bytes:
        async with self._fs() as fs:
            return self._path(fs, path).encode("utf-8", "surrogateescape")

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        def operation(fs: SandboxFS) -> asyncssh.SFTPAttrs:
            with _opened(fs, self._path(fs, path), os.O_PATH) as fd:
                return self._attrs(fs, os.fstat(fd))

        return await self._do(operation)

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        def operation(fs: SandboxFS) -> asyncssh.SFTPAttrs:
            absolute = self._path(fs, path)
            if absolute == "/":
                with _opened(fs, "/", os.O_PATH) as fd:
                    return self._attrs(fs, os.fstat(fd))
            parent, name = self._parent(fs, path)
            try:
                return self._attrs(fs, os.stat(name, dir_fd=parent, follow_symlinks=False))
            finally:
                os.close(parent)

        return await self._do(operation)

    def _apply(self, fd: int, attrs: asyncssh.SFTPAttrs) -> None:
        if attrs.size is not None:
            os.ftruncate(fd, attrs.size)
        if attrs.permissions is not None:
            os.fchmod(fd, stat.S_IMODE(attrs.permissions))
        if attrs.atime is not None and attrs.mtime is not None:
            os.utime(fd, (attrs.atime, attrs.mtime))
        # uid and gid are left alone: the sandbox user could not change them either.

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        def operation(fs: SandboxFS) -> None:
            flags = (os.O_WRONLY if attrs.size is not None else os.O_RDONLY) | os.O_NONBLOCK
            with _opened(fs, self._path(fs, path), flags | os.O_NOCTTY) as fd:
                self._apply(fd, attrs)

        await self._do(operation)

    async def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self.setstat(path, attrs)

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        fd = self._handle(file_obj)
        async with self._fs() as fs:
            return self._attrs(fs, await asyncio.to_thread(os.fstat, fd))

    async def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        fd = self._handle(file_obj)
        await self._do(lambda _fs: self._apply(fd, attrs))

    async def statvfs(self, path: bytes) -> os.statvfs_result:
        def operation(fs: SandboxFS) -> os.statvfs_result:
            with _opened(fs, self._path(fs, path), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY) as fd:
                return os.fstatvfs(fd)

        return await self._do(operation)

    # -- files -------------------------------------------------------------------

    def _handle(self, file_obj: object) -> int:
        if not isinstance(file_obj, int) or file_obj not in self.handles:
            raise asyncssh.SFTPInvalidHandle("invalid handle")
        return file_obj

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> int:
        if len(self.handles) >= MAX_SFTP_HANDLES:
            raise asyncssh.SFTPFailure(f"at most {MAX_SFTP_HANDLES} open files per session")
        read, write = bool(pflags & asyncssh.FXF_READ), bool(pflags & asyncssh.FXF_WRITE)
        flags = os.O_RDWR if read and write else os.O_WRONLY if write else os.O_RDONLY
        for bit, flag in (
            (asyncssh.FXF_APPEND, os.O_APPEND),
            (asyncssh.FXF_CREAT, os.O_CREAT),
            (asyncssh.FXF_TRUNC, os.O_TRUNC),
            (asyncssh.FXF_EXCL, os.O_EXCL),
        ):
            if pflags & bit:
                flags |= flag
        perms = 0o644 if attrs.permissions is None else stat.S_IMODE(attrs.permissions)
        if not flags & os.O_CREAT:
            perms = 0  # openat2 refuses a mode without O_CREAT

        def operation(fs: SandboxFS) -> int:
            # Non-blocking so that a FIFO never holds a thread; only regular files pass.
            fd = fs.open_fd(self._path(fs, path), flags | os.O_NOCTTY | os.O_NONBLOCK, perms)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(errno.EINVAL, "not a regular file")
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
            return fd

        fd = await self._do(operation)
        self.handles.add(fd)
        return fd

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        fd = self._handle(file_obj)
        return await asyncio.to_thread(os.pread, fd, min(size, 1 << 20), offset)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        fd = self._handle(file_obj)
        self.gateway.engine.touch(self.sandbox_id)

        def operation() -> int:
            view, written = memoryview(data), 0
            while written < len(view):
                written += os.pwrite(fd, view[written:], offset + written)
            return written

        return await asyncio.to_thread(operation)

    async def fsync(self, file_obj: object) -> None:
        await asyncio.to_thread(os.fsync, self._handle(file_obj))

    async def close(self, file_obj: object) -> None:
        fd = self._handle(file_obj)
        self.handles.discard(fd)
        os.close(fd)

    # -- directories and names ---------------------------------------------------

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        def operation(fs: SandboxFS) -> list[asyncssh.SFTPName]:
            names = []
            with _opened(fs, self._path(fs, path), os.O_RDONLY | os.O_DIRECTORY) as fd:
                for name in [".", "..", *sorted(os.listdir(fd))]:
                    with contextlib.suppress(FileNotFoundError):
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        encoded = name.encode("utf-8", "surrogateescape")
                        names.append(asyncssh.SFTPName(encoded, attrs=self._attrs(fs, st)))
            return names

        for entry in await self._do(operation):
            yield entry

    async def _at_parent(self, path: bytes, action: Callable[[int, str], T]) -> T:
        def operation(fs: SandboxFS) -> T:
            parent, name = self._parent(fs, path)
            try:
                return action(parent, name)
            finally:
                os.close(parent)

        return await self._do(operation)

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        mode = 0o755 if attrs.permissions is None else stat.S_IMODE(attrs.permissions)
        await self._at_parent(path, lambda fd, name: os.mkdir(name, mode, dir_fd=fd))

    async def rmdir(self, path: bytes) -> None:
        await self._at_parent(path, lambda fd, name: os.rmdir(name, dir_fd=fd))

    async def remove(self, path: bytes) -> None:
        await self._at_parent(path, lambda fd, name: os.unlink(name, dir_fd=fd))

    async def readlink(self, path: bytes) -> bytes:
        target = await self._at_parent(path, lambda fd, name: os.readlink(name, dir_fd=fd))
        return target.encode("utf-8", "surrogateescape")

    async def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        # Any target is harmless: links are resolved inside the sandbox's root.
        target = _name(oldpath)
        await self._at_parent(newpath, lambda fd, name: os.symlink(target, name, dir_fd=fd))

    async def _at_parents(
        self, oldpath: bytes, newpath: bytes, action: Callable[[int, str, int, str], None]
    ) -> None:
        def operation(fs: SandboxFS) -> None:
            old_parent, old_name = self._parent(fs, oldpath)
            try:
                new_parent, new_name = self._parent(fs, newpath)
                try:
                    action(old_parent, old_name, new_parent, new_name)
                finally:
                    os.close(new_parent)
            finally:
                os.close(old_parent)

        await self._do(operation)

    async def _rename(self, oldpath: bytes, newpath: bytes, *, replace: bool) -> None:
        def action(old_parent: int, old_name: str, new_parent: int, new_name: str) -> None:
            if not replace:  # SFTP v3's rename never overwrites
                with contextlib.suppress(FileNotFoundError):
                    os.stat(new_name, dir_fd=new_parent, follow_symlinks=False)
                    raise OSError(errno.EEXIST, "already exists")
            os.rename(old_name, new_name, src_dir_fd=old_parent, dst_dir_fd=new_parent)

        await self._at_parents(oldpath, newpath, action)

    async def link(self, oldpath: bytes, newpath: bytes) -> None:
        # asyncssh's own link() (OpenSSH's `ln`, hardlink@openssh.com) works on the
        # engine's paths as the engine's user: both ends must be the sandbox's.
        def action(old_parent: int, old_name: str, new_parent: int, new_name: str) -> None:
            os.link(old_name, new_name, src_dir_fd=old_parent, dst_dir_fd=new_parent,
                    follow_symlinks=False)  # fmt: skip

        await self._at_parents(oldpath, newpath, action)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=True)

    def exit(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in list(self.handles):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.handles.clear()
        # asyncssh ends an SFTP channel without an exit status; scp takes that for a
        # failure (sshd sends 0), so send it.
        with contextlib.suppress(OSError, asyncssh.Error):
            self.channel.exit(0)
        self.gateway.audit(self.session, 200, 0)


# -- wiring -------------------------------------------------------------------------


def install(app: Starlette, engine: Engine) -> None:
    """Run the gateway for the application's lifetime when the engine has an SSH port."""
    port = engine.config.ssh_port
    if port is None:
        return
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Starlette) -> AsyncIterator[Any]:
        async with inner(application) as state:
            gateway = Gateway(engine, engine.config.host, port)
            await gateway.start()
            app.state.ssh_gateway = gateway
            try:
                yield state
            finally:
                app.state.ssh_gateway = None
                await gateway.close()

    app.router.lifespan_context = lifespan


__all__ = ["AccessStore", "Gateway", "install", "routes", "ssh_command"]
