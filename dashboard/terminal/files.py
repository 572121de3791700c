"""The files tab: browse, download, upload, create folders, delete and move in a sandbox.

Same rule as the terminal: only those who may open a shell in the sandbox (its
owner, admins) see its files; anyone else gets a 404. Every change and every
download (bytes, seconds) is audited.
"""

import posixpath
import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from dashboard import daytona
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record_request
from dashboard.daytona import client, streams, toolbox
from dashboard.terminal.views import _sandbox

MAX_UPLOAD_FILES = 100


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) for each folder from the root down to `path`."""
    crumbs = [("/", "/")]
    current = ""
    for part in [p for p in path.split("/") if p]:
        current += "/" + part
        crumbs.append((part, current))
    return crumbs


def _name(value: object) -> str:
    """One path segment: a file or folder name, not a path."""
    if not isinstance(value, str) or not value.strip():
        raise daytona.BadRequest("Give a name.")
    value = value.strip()
    if "/" in value or value in (".", "..") or len(value) > 255:
        raise daytona.BadRequest("A name has no slashes, is not . or .., and is at most 255 long.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise daytona.BadRequest("A name cannot contain control characters.")
    return value


async def _listing(
    request: HttpRequest,
    sandbox: daytona.Sandbox,
    path: str | None,
    *,
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> HttpResponse:
    context: dict = {"sandbox": sandbox, "error": error, "notice": notice, "entries": []}
    try:
        folder = toolbox.clean_path(path) if path else await toolbox.home_dir(sandbox)
        context["entries"] = await toolbox.list_files(sandbox, folder)
    except daytona.BadRequest as problem:
        folder = "/"
        context["error"] = problem.message
        status = 400
    except daytona.NotFound:
        context["error"] = context["error"] or f"{path} does not exist (any more)."
        folder = posixpath.dirname(path or "/") or "/"
        if folder != path:
            with_parent = await _listing(request, sandbox, folder, error=context["error"])
            return with_parent
    except daytona.DaytonaError as problem:
        folder = path or "/"
        context["error"] = problem.message
    context["path"] = folder
    context["parent"] = posixpath.dirname(folder) if folder != "/" else ""
    context["crumbs"] = _crumbs(folder)
    return await sync_to_async(render)(request, "terminal/_files.html", context, status=status)


async def _audit(request: HttpRequest, action: str, sandbox, detail: dict, error: str = "") -> None:
    await sync_to_async(record_request)(
        request,
        action,
        target_kind="sandbox",
        target_id=sandbox.id,
        target_name=sandbox.name,
        outcome=Outcome.FAILURE if error else Outcome.SUCCESS,
        error=error,
        detail=detail,
    )


@require_GET
async def browse(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """One folder's entries (HTMX fragment); the home folder when no path is given."""
    sandbox = await _sandbox(await request.auser(), sandbox_id)
    return await _listing(request, sandbox, request.GET.get("path") or None)


@require_GET
async def download(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """One file's bytes, streamed from the sandbox."""
    sandbox = await _sandbox(await request.auser(), sandbox_id)
    try:
        path = toolbox.clean_path(request.GET.get("path"))
        chunks = await streams.download(sandbox, path)
    except daytona.BadRequest as error:
        return HttpResponse(error.message, status=400, content_type="text/plain")
    except daytona.NotFound:
        raise Http404("No such file.") from None
    except daytona.DaytonaError as error:
        return HttpResponse(error.message, status=503, content_type="text/plain")

    # The body streams after the middleware has let go of the connection: the entry
    # names the one this download goes through.
    connection = client.current_target()

    async def body() -> AsyncIterator[bytes]:
        # The transfer goes in the trail when it ends: how many bytes, how long, and
        # whether it finished (a browser that leaves mid-way is a failure).
        sent, started, error = 0, time.monotonic(), "the download stopped before the end"
        try:
            async for chunk in chunks:
                sent += len(chunk)
                yield chunk
            error = ""
        finally:
            seconds = round(time.monotonic() - started, 1)
            detail = {"path": path, "bytes": sent, "seconds": seconds}
            with client.aimed_at(connection):
                await _audit(request, "file.download", sandbox, detail, error)

    response = StreamingHttpResponse(body(), content_type="application/octet-stream")
    name = posixpath.basename(path).replace('"', "_") or "download"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


async def _change(request: HttpRequest, sandbox_id: str, action: str, change) -> HttpResponse:
    sandbox = await _sandbox(await request.auser(), sandbox_id)
    folder = request.POST.get("path") or "/"
    try:
        folder = toolbox.clean_path(folder)
        detail, notice = await change(sandbox, folder)
    except daytona.BadRequest as error:
        return await _listing(request, sandbox, folder, error=error.message)
    except daytona.DaytonaError as error:
        await _audit(request, action, sandbox, {"path": folder}, error.message)
        return await _listing(request, sandbox, folder, error=error.message)
    await _audit(request, action, sandbox, detail)
    return await _listing(request, sandbox, folder, notice=notice)


@require_POST
async def make_folder(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Create a folder in the current one."""

    async def change(sandbox, folder: str) -> tuple[dict, str]:
        target = posixpath.join(folder, _name(request.POST.get("name")))
        await toolbox.make_folder(sandbox, target)
        return {"path": target}, f"Created {target}."

    return await _change(request, sandbox_id, "file.mkdir", change)


@require_POST
async def delete(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Delete a file or a folder (with its contents)."""

    async def change(sandbox, folder: str) -> tuple[dict, str]:
        target = posixpath.join(folder, _name(request.POST.get("name")))
        await toolbox.delete_path(sandbox, target)
        return {"path": target}, f"Deleted {target}."

    return await _change(request, sandbox_id, "file.delete", change)


@require_POST
async def move(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Move or rename an entry of the current folder; a relative target is in that folder."""

    async def change(sandbox, folder: str) -> tuple[dict, str]:
        source = posixpath.join(folder, _name(request.POST.get("name")))
        target = (request.POST.get("destination") or "").strip()
        if not target:
            raise daytona.BadRequest("Where to? Give a new name or a path.")
        target = toolbox.clean_path(posixpath.join(folder, target))
        await toolbox.move_path(sandbox, source, target)
        return {"source": source, "destination": target}, f"Moved {source} to {target}."

    return await _change(request, sandbox_id, "file.move", change)


@require_POST
async def upload(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Upload files into the current folder (multipart `files`)."""

    async def change(sandbox, folder: str) -> tuple[dict, str]:
        files = request.FILES.getlist("files")
        if not files:
            raise daytona.BadRequest("Choose files to upload.")
        if len(files) > MAX_UPLOAD_FILES:
            raise daytona.BadRequest(f"Upload at most {MAX_UPLOAD_FILES} files at once.")
        pairs = [(posixpath.join(folder, _name(f.name)), f.file) for f in files]
        await toolbox.upload_files(sandbox, pairs)
        names = [posixpath.basename(p) for p, _ in pairs]
        total = sum(f.size for f in files)
        detail = {"path": folder, "files": names[:20], "bytes": total}
        return detail, f"Uploaded {len(names)} file{'s' if len(names) != 1 else ''}."

    return await _change(request, sandbox_id, "file.upload", change)
