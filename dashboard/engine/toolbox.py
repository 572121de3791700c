"""The toolbox under ``/toolbox/{sandboxId}``: process execute, code run and files."""

from __future__ import annotations

import json
import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import contextmanager
from typing import IO, Any

from anyio import to_thread
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from dashboard.engine.errors import ApiError, BadRequest, PayloadTooLarge, RequestTimeout
from dashboard.engine.fs import FsError, SandboxFS
from dashboard.engine.lifecycle import Engine
from dashboard.engine.process import CommandTimeout, run_command
from dashboard.engine.runtime import NotRunning, rootfs
from dashboard.engine.store import SandboxRecord, iso, now
from dashboard.engine.validation import Body, Query, read_json

MAX_UPLOAD_FILES = 1000
CHUNK = 1 << 20
MAX_TEXT = 16 << 20  # characters of a replace's pattern or new value
BASE_ENV = {
    "PATH": rootfs.PATH,
    "HOME": rootfs.HOME,
    "USER": rootfs.SANDBOX_USER,
    "LOGNAME": rootfs.SANDBOX_USER,
    "SHELL": "/bin/bash",
    "LANG": "C.UTF-8",
    "HOSTNAME": "sandbox",
}
INTERPRETERS = {"python": ["python3", "-u", "-"], "javascript": ["node", "-"]}


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _sandbox(request: Request) -> SandboxRecord:
    """The started sandbox named in the path; the call counts as activity."""
    engine = _engine(request)
    record = engine.find_started(request.path_params["sandbox_id"])
    engine.touch(record.id)
    return record


@contextmanager
def _fs(request: Request, record: SandboxRecord) -> Any:
    """A file-system view of the sandbox on a private duplicate of its root handle.

    The duplicate keeps the handle valid even if the sandbox stops meanwhile.
    """
    try:
        running = _engine(request).runtime.get(record.id)
    except NotRunning as error:
        raise ApiError(str(error), status=409) from None
    root_fd = os.dup(running.root_fd)
    try:
        yield SandboxFS(root_fd, running.spec.uid, rootfs.HOME)
    finally:
        os.close(root_fd)


async def _in_thread[R](function: Callable[[], R]) -> R:
    return await to_thread.run_sync(function)


def _env(record: SandboxRecord, extra: dict[str, str]) -> dict[str, str]:
    return {**BASE_ENV, **record.env, **extra}


async def check_cwd(request: Request, record: SandboxRecord, cwd: str | None) -> str:
    """A command's working directory: absolute, an existing directory (400 if not)."""
    if not cwd:
        return rootfs.HOME
    with _fs(request, record) as fs:
        absolute = fs.absolute(cwd)
        if not await _in_thread(lambda: fs.is_dir(absolute)):
            raise BadRequest(f"cwd {absolute} is not a directory in the sandbox")
    return absolute


def _timeout(request: Request, body: Body) -> int:
    timeout = body.integer("timeout", 0, minimum=0, maximum=7 * 24 * 3600)
    return timeout or _engine(request).config.exec_timeout


# -- process ------------------------------------------------------------------------


DAEMON = "DAYTONA_DAEMON"  # the error source Daytona's SDK expects from the toolbox


def _timed_out() -> RequestTimeout:
    """A killed command, in the daemon's words and code (the SDK raises its
    DaytonaProcessExecutionTimeoutError for it)."""
    return RequestTimeout(
        "command execution timeout", code="PROCESS_EXECUTION_TIMEOUT", source=DAEMON
    )


async def execute(request: Request) -> Response:
    """POST /process/execute: run through bash; combined output and exit code."""
    record = _sandbox(request)
    body = Body(await read_json(request), {"command", "cwd", "envs", "timeout"})
    command = body.string("command", required=True, allow_empty=False)
    assert command is not None
    envs = body.string_map("envs", env=True)
    timeout = _timeout(request, body)
    cwd = await check_cwd(request, record, body.string("cwd"))
    try:
        with _engine(request).busy(record.id):
            result = await run_command(
                _engine(request).runtime,
                record.id,
                ["/bin/bash", "-c", command],
                env=_env(record, envs),
                cwd=cwd,
                time_limit=timeout,
            )
    except CommandTimeout:
        raise _timed_out() from None
    except NotRunning as error:
        raise ApiError(str(error), status=409) from None
    return JSONResponse({"exitCode": result.exit_code, "result": result.output})


async def code_run(request: Request) -> Response:
    """POST /process/code-run: run code with the language's interpreter."""
    record = _sandbox(request)
    body = Body(await read_json(request), {"code", "language", "argv", "envs", "timeout"})
    code = body.string("code", required=True, max_length=16 << 20)
    assert code is not None
    language = body.string("language") or record.labels.get("code-toolbox-language", "python")
    if language not in INTERPRETERS:
        raise BadRequest(f"language {language} is not available in this sandbox")
    argv = body.string_list("argv")
    envs = body.string_map("envs", env=True)
    timeout = _timeout(request, body)
    try:
        with _engine(request).busy(record.id):
            result = await run_command(
                _engine(request).runtime,
                record.id,
                [*INTERPRETERS[language], *argv],
                env=_env(record, envs),
                cwd=rootfs.HOME,
                time_limit=timeout,
                stdin=code.encode(),
            )
    except CommandTimeout:
        raise _timed_out() from None
    except NotRunning as error:
        raise ApiError(str(error), status=409) from None
    return JSONResponse(
        {"exitCode": result.exit_code, "result": result.output, "artifacts": {"charts": []}}
    )


# -- files: reading -------------------------------------------------------------------


async def list_files(request: Request) -> Response:
    """GET /files?path=: the entries of a directory."""
    record = _sandbox(request)
    query = Query(request.query_params, {"path", "depth"})
    query.integer("depth", minimum=0, maximum=100)
    path = query.string("path") or rootfs.HOME
    with _fs(request, record) as fs:
        return JSONResponse(await _in_thread(lambda: fs.list(path)))


async def file_info(request: Request) -> Response:
    """GET /files/info?path=."""
    record = _sandbox(request)
    path = Query(request.query_params, {"path"}).string("path", required=True)
    assert path is not None
    with _fs(request, record) as fs:
        return JSONResponse(await _in_thread(lambda: fs.info(path)))


async def search_files(request: Request) -> Response:
    """GET /files/search?path=&pattern=: names matching a glob, recursively."""
    record = _sandbox(request)
    query = Query(request.query_params, {"path", "pattern"})
    path = query.string("path") or rootfs.HOME
    pattern = query.string("pattern", required=True)
    assert pattern is not None
    with _fs(request, record) as fs:
        return JSONResponse({"files": await _in_thread(lambda: fs.search(path, pattern))})


async def find_in_files(request: Request) -> Response:
    """GET /files/find?path=&pattern=: lines containing the pattern."""
    record = _sandbox(request)
    query = Query(request.query_params, {"path", "pattern"})
    path = query.string("path") or rootfs.HOME
    pattern = query.string("pattern", required=True)
    assert pattern is not None
    if not pattern:
        raise BadRequest("pattern must not be empty")
    with _fs(request, record) as fs:
        return JSONResponse(await _in_thread(lambda: fs.find(path, pattern)))


async def download_file(request: Request) -> Response:
    """GET /files/download?path=: the raw bytes."""
    record = _sandbox(request)
    path = Query(request.query_params, {"path"}).string("path", required=True)
    assert path is not None
    with _fs(request, record) as fs:
        handle = await _in_thread(lambda: fs.open_read(path))
    return StreamingResponse(_chunks(handle), media_type="application/octet-stream")


async def _chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := await _in_thread(lambda: handle.read(CHUNK)):
            yield chunk
    finally:
        handle.close()


def _disposition(name: str, path: str) -> str:
    """A Content-Disposition naming the requested path byte for byte."""
    if path.isascii() and path.isprintable() and '"' not in path and "\\" not in path:
        return f'form-data; name="{name}"; filename="{path}"'
    quoted = urllib.parse.quote(path, safe="")
    return f"form-data; name=\"{name}\"; filename*=UTF-8''{quoted}"


async def bulk_download(request: Request) -> Response:
    """POST /files/bulk-download {paths}: multipart, one ``file`` or ``error`` part per path."""
    record = _sandbox(request)
    body = Body(await read_json(request), {"paths"})
    paths = body.string_list("paths")
    if not paths:
        raise BadRequest("paths must be a non-empty array of strings")
    boundary = secrets.token_hex(16)
    running = _engine(request).runtime.get(record.id)
    root_fd = os.dup(running.root_fd)
    fs = SandboxFS(root_fd, running.spec.uid, rootfs.HOME)

    async def parts() -> AsyncIterator[bytes]:
        try:
            for path in dict.fromkeys(paths):
                try:
                    handle = await _in_thread(lambda p=path: fs.open_read(p))
                except FsError as error:
                    payload = _json_bytes(error, path)
                    yield _part_head(boundary, "error", path, "application/json", len(payload))
                    yield payload
                    yield b"\r\n"
                    continue
                size = os.fstat(handle.fileno()).st_size
                yield _part_head(boundary, "file", path, "application/octet-stream", size)
                async for chunk in _sized_chunks(handle, size, path):
                    yield chunk
                yield b"\r\n"
            yield f"--{boundary}--\r\n".encode()
        finally:
            os.close(root_fd)

    return StreamingResponse(parts(), media_type=f"multipart/form-data; boundary={boundary}")


def _part_head(boundary: str, name: str, path: str, content_type: str, length: int) -> bytes:
    """A part's headers; Content-Length too, as the daemon sends (the SDK reports
    progress against it)."""
    return (
        f"--{boundary}\r\n"
        f"Content-Disposition: {_disposition(name, path)}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def _sized_chunks(handle: IO[bytes], size: int, path: str) -> AsyncIterator[bytes]:
    """Exactly ``size`` bytes of the file: the part's Content-Length was sent already.

    A file that grows meanwhile is cut at the announced size; one that shrinks cannot
    honour it, so the response is broken off rather than left silently short.
    """
    left = size
    try:
        while left > 0:
            size_now = min(CHUNK, left)
            chunk = await _in_thread(lambda n=size_now: handle.read(n))
            if not chunk:
                raise OSError(f"{path} shrank while it was being downloaded")
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _json_bytes(error: FsError, path: str) -> bytes:
    body: dict[str, object] = {
        "statusCode": error.status,
        "message": error.message,
        "timestamp": iso(now()),
        "path": path,
        "method": "POST",
    }
    if error.code:
        body["code"] = error.code
    return json.dumps(body).encode()


# -- files: writing -------------------------------------------------------------------


def _check_upload_size(request: Request, record: SandboxRecord) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > record.disk << 30:
        raise PayloadTooLarge(f"upload is larger than the sandbox's {record.disk} GiB disk")


async def bulk_upload(request: Request) -> Response:
    """POST /files/bulk-upload: multipart ``files[i].path`` + ``files[i].file`` pairs."""
    record = _sandbox(request)
    _check_upload_size(request, record)
    paths: dict[str, str] = {}
    files: dict[str, UploadFile] = {}
    async with request.form(max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FILES) as form:
        for key, value in form.multi_items():
            if not (key.startswith("files[") and "]." in key):
                raise BadRequest(f"unexpected form field {key}")
            index, _, kind = key[len("files[") :].partition("].")
            if kind == "path" and isinstance(value, str):
                paths[index] = value
            elif kind == "file" and isinstance(value, UploadFile):
                files[index] = value
            else:
                raise BadRequest(f"unexpected form field {key}")
        if not files:
            raise BadRequest("no files in the upload")
        results = []
        with _fs(request, record) as fs:
            for index, upload in files.items():
                destination = paths.get(index) or upload.filename
                if not destination:
                    raise BadRequest(f"files[{index}] has no destination path")
                written = await _in_thread(lambda d=destination, u=upload: fs.write(d, u.file))
                results.append({"path": fs.absolute(destination), "bytes": written})
    return JSONResponse({"files": results})


async def upload_file(request: Request) -> Response:
    """POST /files/upload?path=: a single multipart ``file`` field."""
    record = _sandbox(request)
    path = Query(request.query_params, {"path"}).string("path", required=True)
    assert path is not None
    _check_upload_size(request, record)
    async with request.form(max_files=1, max_fields=1) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("the upload needs a file field named file")
        with _fs(request, record) as fs:
            written = await _in_thread(lambda: fs.write(path, upload.file))
    return JSONResponse({"path": path, "bytes": written})


async def replace_in_files(request: Request) -> Response:
    """POST /files/replace {files, pattern, newValue}: [{file, success, error?}], one per
    file in order; a file that fails does not stop the others (as the daemon)."""
    record = _sandbox(request)
    body = Body(await read_json(request), {"files", "pattern", "newValue"})
    if not isinstance(body.raw("files"), list):
        raise BadRequest("files must be an array of strings")
    files = body.string_list("files", max_items=MAX_UPLOAD_FILES)
    pattern = body.string("pattern", required=True, allow_empty=False, max_length=MAX_TEXT)
    new_value = body.string("newValue", "", max_length=MAX_TEXT)
    assert pattern is not None and new_value is not None
    results: list[dict[str, object]] = []
    with _fs(request, record) as fs:
        for path in files:
            try:
                await _in_thread(lambda p=path: fs.replace(p, pattern.encode(), new_value.encode()))
            except FsError as error:
                results.append({"file": path, "success": False, "error": error.message})
            else:
                results.append({"file": path, "success": True})
    return JSONResponse(results)


def _mode(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        mode = int(raw, 8)
    except ValueError:
        raise BadRequest("mode must be octal, like 755") from None
    if not 0 <= mode <= 0o7777:
        raise BadRequest("mode must be between 0 and 7777")
    return mode


async def create_folder(request: Request) -> Response:
    """POST /files/folder?path=&mode=: like mkdir -p."""
    record = _sandbox(request)
    query = Query(request.query_params, {"path", "mode"})
    path = query.string("path", required=True)
    assert path is not None
    mode = _mode(query.string("mode"), 0o755) & 0o777
    with _fs(request, record) as fs:
        await _in_thread(lambda: fs.mkdir(path, mode))
    return Response(status_code=201)


async def delete_file(request: Request) -> Response:
    """DELETE /files?path=&recursive=."""
    record = _sandbox(request)
    query = Query(request.query_params, {"path", "recursive"})
    path = query.string("path", required=True)
    assert path is not None
    recursive = bool(query.boolean("recursive", False))
    with _fs(request, record) as fs:
        await _in_thread(lambda: fs.delete(path, recursive=recursive))
    return Response(status_code=204)


async def move_file(request: Request) -> Response:
    """POST /files/move?source=&destination=."""
    record = _sandbox(request)
    query = Query(request.query_params, {"source", "destination"})
    source = query.string("source", required=True)
    destination = query.string("destination", required=True)
    assert source is not None and destination is not None
    with _fs(request, record) as fs:
        await _in_thread(lambda: fs.move(source, destination))
    return Response(status_code=200)


async def set_permissions(request: Request) -> Response:
    """POST /files/permissions?path=&mode=: owner and group cannot change here."""
    record = _sandbox(request)
    query = Query(request.query_params, {"path", "mode", "owner", "group"})
    path = query.string("path", required=True)
    assert path is not None
    for key in ("owner", "group"):
        if query.string(key) not in (None, "", rootfs.SANDBOX_USER):
            raise BadRequest(f"{key} can only be {rootfs.SANDBOX_USER} in this sandbox")
    raw_mode = query.string("mode")
    if raw_mode:
        mode = _mode(raw_mode, 0o644)
        with _fs(request, record) as fs:
            await _in_thread(lambda: fs.chmod(path, mode))
    return Response(status_code=200)


# -- info -------------------------------------------------------------------------------


async def work_dir(request: Request) -> Response:
    """GET /work-dir."""
    _sandbox(request)
    return JSONResponse({"dir": rootfs.HOME})


async def version(request: Request) -> Response:
    """GET /version."""
    _sandbox(request)
    return JSONResponse({"version": "sandbar-engine-0.1"})


def routes() -> list[BaseRoute]:
    """The toolbox routes, mounted at /toolbox."""
    base = "/{sandbox_id}"
    return [
        Route(f"{base}/process/execute", execute, methods=["POST"]),
        Route(f"{base}/process/code-run", code_run, methods=["POST"]),
        Route(f"{base}/files", list_files, methods=["GET"]),
        Route(f"{base}/files", delete_file, methods=["DELETE"]),
        Route(f"{base}/files/info", file_info, methods=["GET"]),
        Route(f"{base}/files/search", search_files, methods=["GET"]),
        Route(f"{base}/files/find", find_in_files, methods=["GET"]),
        Route(f"{base}/files/download", download_file, methods=["GET"]),
        Route(f"{base}/files/bulk-download", bulk_download, methods=["POST"]),
        Route(f"{base}/files/bulk-upload", bulk_upload, methods=["POST"]),
        Route(f"{base}/files/upload", upload_file, methods=["POST"]),
        Route(f"{base}/files/folder", create_folder, methods=["POST"]),
        Route(f"{base}/files/move", move_file, methods=["POST"]),
        Route(f"{base}/files/replace", replace_in_files, methods=["POST"]),
        Route(f"{base}/files/permissions", set_permissions, methods=["POST"]),
        Route(f"{base}/work-dir", work_dir, methods=["GET"]),
        Route(f"{base}/user-home-dir", work_dir, methods=["GET"]),
        Route(f"{base}/version", version, methods=["GET"]),
    ]
