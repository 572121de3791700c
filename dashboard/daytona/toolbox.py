"""The toolbox REST API of one sandbox: PTY sessions, command sessions and files.

Toolbox URLs hang off the sandbox's `toolboxProxyUrl` (not DAYTONA_API_URL), so
these calls go through the shared pooled client with an absolute URL. Streams
(PTY and log WebSockets, file downloads) are in `dashboard.daytona.streams`.
"""

import posixpath
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
from msgspec.structs import force_setattr

from dashboard.daytona.client import (
    BadRequest,
    Unavailable,
    _error_for,
    auth_header,
    connection,
    request,
)
from dashboard.daytona.models import Sandbox, Time, Wire

# Daytona keeps stdout and stderr apart in command logs only for clients that say so.
SDK_VERSION = "0.190.0"
MAX_PTY_SIZE = 1000
TOOLBOX_HEADERS = {"X-Daytona-SDK-Version": SDK_VERSION, "X-Daytona-Split-Output": "true"}
MAX_PATH = 4096


async def toolbox_base(sandbox: Sandbox) -> str:
    """`{toolboxProxyUrl}/{id}`: where this sandbox's toolbox answers."""
    url = sandbox.toolbox_proxy_url
    if not url:
        data = await request("GET", f"/sandbox/{quote(sandbox.id, safe='')}/toolbox-proxy-url")
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise Unavailable("Daytona did not say where this sandbox's toolbox is.")
    return url.rstrip("/") + "/" + quote(sandbox.id, safe="")


def auth_headers() -> dict[str, str]:
    """The headers every toolbox call carries (REST and WebSocket upgrades alike)."""
    return {**auth_header(), **TOOLBOX_HEADERS}


async def _send(
    method: str,
    url: str,
    *,
    params: list[tuple[str, str]] | None,
    json_body: Any,
    files: Any,
    data: Any,
    seconds: float,
) -> httpx.Response:
    try:
        async with connection() as http:
            response = await http.request(
                method,
                url,
                params=params,
                json=json_body,
                files=files,
                data=data,
                headers=auth_headers(),
                timeout=seconds,
            )
            await response.aread()
    except httpx.TimeoutException:
        raise Unavailable(f"The sandbox did not answer within {seconds:g} seconds.") from None
    except httpx.TransportError as error:
        raise Unavailable(f"The sandbox cannot be reached ({type(error).__name__}).") from None
    if response.is_error:
        raise _error_for(response)
    return response


async def call(
    sandbox: Sandbox,
    method: str,
    path: str,
    *,
    params: list[tuple[str, str]] | None = None,
    json_body: Any = None,
    files: Any = None,
    data: Any = None,
    seconds: float = 10.0,
) -> Any:
    """One toolbox call; the decoded JSON body, or None when there is none."""
    url = await toolbox_base(sandbox) + path
    response = await _send(
        method,
        url,
        params=params,
        json_body=json_body,
        files=files,
        data=data,
        seconds=seconds,
    )
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise Unavailable("The sandbox answered with something that is not JSON.") from None


# -- PTY -----------------------------------------------------------------------------


class PtyInfo(Wire):
    what, sender = "terminal", "The sandbox"
    id: str
    active: bool | None = False
    cols: int | None = 80
    rows: int | None = 24
    cwd: str | None = ""
    created_at: Time | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.id:
            raise ValueError("a terminal without an id")


def check_pty_size(cols: object, rows: object) -> tuple[int, int]:
    """Columns and rows between 1 and 1000, or BadRequest with a message for people."""
    for name, value in (("columns", cols), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"The terminal's {name} must be a whole number.")
        if not 1 <= value <= MAX_PTY_SIZE:
            raise BadRequest(f"The terminal's {name} must be from 1 to {MAX_PTY_SIZE}.")
    return cols, rows  # type: ignore[return-value]


def _pty(pty_id: str) -> str:
    return "/process/pty/" + quote(pty_id, safe="")


async def create_pty(sandbox: Sandbox, pty_id: str, *, cols: int = 80, rows: int = 24) -> None:
    """Start a shell on a new PTY named `pty_id` (Conflict if it exists)."""
    cols, rows = check_pty_size(cols, rows)
    await call(
        sandbox, "POST", "/process/pty", json_body={"id": pty_id, "cols": cols, "rows": rows}
    )


async def list_ptys(sandbox: Sandbox) -> list[PtyInfo]:
    """Every PTY session of the sandbox."""
    data = await call(sandbox, "GET", "/process/pty")
    sessions = data.get("sessions") if isinstance(data, dict) else None
    return [PtyInfo.from_api(s) for s in sessions or [] if isinstance(s, dict)]


async def get_pty(sandbox: Sandbox, pty_id: str) -> PtyInfo:
    """One PTY session (NotFound once it is gone)."""
    return PtyInfo.from_api(await call(sandbox, "GET", _pty(pty_id)))


async def resize_pty(sandbox: Sandbox, pty_id: str, cols: int, rows: int) -> PtyInfo:
    """Set the PTY's window size; the program in it gets SIGWINCH."""
    cols, rows = check_pty_size(cols, rows)
    data = await call(
        sandbox, "POST", _pty(pty_id) + "/resize", json_body={"cols": cols, "rows": rows}
    )
    return PtyInfo.from_api(data)


async def kill_pty(sandbox: Sandbox, pty_id: str) -> None:
    """Kill the PTY's process tree; attached clients see exit code 137."""
    await call(sandbox, "DELETE", _pty(pty_id))


# -- sessions and commands ----------------------------------------------------------


class Command(Wire):
    what, sender = "command", "The sandbox"
    id: str | None = ""
    command: str | None = ""
    exit_code: int | None = None
    cmd_id: str | None = ""  # what older daemons call the id

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.id and self.cmd_id:
            force_setattr(self, "id", self.cmd_id)


class Session(Wire):
    what, sender = "session", "The sandbox"
    id: str | None = msgspec.field(default="", name="sessionId")
    commands: tuple[Command, ...] | None = ()


def _session(session_id: str) -> str:
    return "/process/session/" + quote(session_id, safe="")


async def list_sessions(sandbox: Sandbox) -> list[Session]:
    """Every command session of the sandbox, with its commands."""
    data = await call(sandbox, "GET", "/process/session")
    return [Session.from_api(s) for s in data or [] if isinstance(s, dict)]


async def create_session(sandbox: Sandbox, session_id: str) -> None:
    """A new command session (a shell that keeps its state between commands)."""
    await call(sandbox, "POST", "/process/session", json_body={"sessionId": session_id})


async def run_command(sandbox: Sandbox, session_id: str, command: str) -> Command:
    """Start `command` in the session without waiting for it; its id comes back."""
    data = await call(
        sandbox,
        "POST",
        _session(session_id) + "/exec",
        json_body={"command": command, "runAsync": True},
    )
    cmd = Command.from_api(data)
    if not cmd.id:
        raise Unavailable("The sandbox started the command but sent no id for it.")
    return Command(cmd.id, command, cmd.exit_code)


async def get_command(sandbox: Sandbox, session_id: str, command_id: str) -> Command:
    """A command of a session, with its exit code once it has finished."""
    path = _session(session_id) + "/command/" + quote(command_id, safe="")
    return Command.from_api(await call(sandbox, "GET", path))


# -- files --------------------------------------------------------------------------


class FileEntry(Wire):
    what, sender = "file entry", "The sandbox"
    name: str
    is_dir: bool | None = False
    size: int | None = 0
    mode: str | None = ""
    permissions: str | None = ""
    # Daytona's daemon also sends `modTime` in Go's own format, which is not read.
    modified_at: Time | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.name:
            raise ValueError("a file entry without a name")
        if self.permissions:
            force_setattr(self, "mode", self.permissions)


def clean_path(path: object) -> str:
    """An absolute, normalised sandbox path, or BadRequest with a reason."""
    if not isinstance(path, str) or not path.strip():
        raise BadRequest("Give a path.")
    if len(path) > MAX_PATH:
        raise BadRequest(f"Paths are limited to {MAX_PATH} characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise BadRequest("A path cannot contain control characters.")
    if not path.startswith("/"):
        raise BadRequest("Paths start with / (they are inside the sandbox).")
    return posixpath.normpath(path).replace("//", "/")


async def list_files(sandbox: Sandbox, path: str) -> list[FileEntry]:
    """The entries of a folder, folders first, then by name."""
    data = await call(sandbox, "GET", "/files", params=[("path", clean_path(path))])
    if not isinstance(data, list):
        raise Unavailable("The sandbox sent a malformed folder listing.")
    entries = [FileEntry.from_api(item) for item in data]
    return sorted(entries, key=lambda e: (not e.is_dir, e.name.lower()))


async def home_dir(sandbox: Sandbox) -> str:
    """The sandbox user's home folder."""
    data = await call(sandbox, "GET", "/user-home-dir")
    home = data.get("dir") if isinstance(data, dict) else None
    return home if isinstance(home, str) and home.startswith("/") else "/"


async def make_folder(sandbox: Sandbox, path: str) -> None:
    """Create a folder (mode 0755)."""
    await call(
        sandbox, "POST", "/files/folder", params=[("path", clean_path(path)), ("mode", "0755")]
    )


async def delete_path(sandbox: Sandbox, path: str) -> None:
    """Delete a file, or a folder with everything in it."""
    path = clean_path(path)
    if path == "/":
        raise BadRequest("The root folder cannot be deleted.")
    await call(sandbox, "DELETE", "/files", params=[("path", path), ("recursive", "true")])


async def move_path(sandbox: Sandbox, source: str, destination: str) -> None:
    """Move or rename a file or folder."""
    params = [("source", clean_path(source)), ("destination", clean_path(destination))]
    await call(sandbox, "POST", "/files/move", params=params)


async def upload_files(sandbox: Sandbox, files: Iterable[tuple[str, Any]]) -> None:
    """Upload (destination path, file object) pairs in one multipart request."""
    fields: list[tuple[str, Any]] = []
    data: dict[str, str] = {}
    for index, (path, handle) in enumerate(files):
        path = clean_path(path)
        data[f"files[{index}].path"] = path
        fields.append((f"files[{index}].file", (path, handle, "application/octet-stream")))
    if not fields:
        raise BadRequest("Choose a file to upload.")
    await call(sandbox, "POST", "/files/bulk-upload", files=fields, data=data, seconds=300)
