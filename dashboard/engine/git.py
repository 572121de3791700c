"""The git toolbox (``/git/...``), Daytona's routes and wire shapes for ``sandbox.git``.

Every operation runs the sandbox's own ``git`` inside the sandbox as its user, so it sees
exactly the files, keys and config the user does and reaches only what the sandbox's
network policy allows. Behaviour follows Daytona's daemon (go-git): single-branch clones,
a commit's author also as its committer, fast-forward-only pulls, pushes of the current
branch to the same name, branch deletion without a merge check, and no hooks run.

Credentials travel in the git process's environment and reach git through a credential
helper given on its command line; they are never in git's arguments, a file, or the
engine's logs, and error messages (which the audit log keeps) have them masked. Like
any sandbox environment variable, they are briefly in the arguments of the host
processes that enter the sandbox (a known gap, see docs/security.md).
Failures answer the daemon's status and code (``GIT_REPO_NOT_FOUND``, ``GIT_BRANCH_EXISTS``,
``GIT_PUSH_REJECTED``...) with source ``DAYTONA_DAEMON``, so the SDK raises its typed
errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.engine.errors import ApiError, BadRequest, RequestTimeout
from dashboard.engine.lifecycle import Engine
from dashboard.engine.runtime import NotRunning, RuntimeError_, rootfs
from dashboard.engine.store import SandboxRecord
from dashboard.engine.toolbox import BASE_ENV, DAEMON, _engine, _sandbox
from dashboard.engine.validation import Body, Query, read_json

MAX_OUTPUT = 16 << 20  # bytes of a git command's stdout kept (a long history)
MAX_MESSAGE = 4000  # characters of git's own words quoted in an error
MAX_PATHS = 10_000
DRAIN_SECONDS = 2.0  # to read git's output once it has exited
# Reads the credentials from the environment only when git asks for them ("get").
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" '
    '"$GIT_USERNAME" "$GIT_PASSWORD"; }; f'
)
# go-git runs no hooks and signs nothing; the same here, whatever the user's config says.
# No automatic gc either: a detached one could hold the output open after git returns.
BASE_CONFIG = (
    *("-c", "core.hooksPath=/dev/null"),
    *("-c", "commit.gpgSign=false"),
    *("-c", "gc.auto=0"),
)
STATUS_NAMES = {
    ".": "Unmodified",
    " ": "Unmodified",
    "M": "Modified",
    "T": "Modified",
    "A": "Added",
    "D": "Deleted",
    "R": "Renamed",
    "C": "Copied",
    "U": "Updated but unmerged",
    "?": "Untracked",
}


@dataclass(frozen=True)
class Credentials:
    """HTTP basic credentials for a remote, as the request gave them."""

    username: str
    password: str

    def mask(self, text: str) -> str:
        """``text`` with the secret (and a username long enough to be told apart) masked."""
        if self.password:
            text = text.replace(self.password, "***")
        if len(self.username) >= 3:
            text = text.replace(self.username, "***")
        return text


class GitError(ApiError):
    """A git failure in the daemon's shape."""


# (needles in git's lowercased output, status, code): the first entry that matches wins.
CLASSES: list[tuple[tuple[str, ...], int, str | None]] = [
    (
        (
            "authentication failed",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "invalid username or password",
            "returned error: 401",
        ),
        401,
        "GIT_AUTH_FAILED",
    ),
    (("returned error: 403", "permission denied (publickey"), 403, None),
    (
        (
            "not a git repository",
            "cannot change to",
            "does not appear to be a git repository",
            "repository not found",
            "does not exist",
            "returned error: 404",
        ),
        404,
        "GIT_REPO_NOT_FOUND",
    ),
    (("already exists and is not an empty directory",), 409, None),
    (("a branch named",), 409, "GIT_BRANCH_EXISTS"),
    (("already exists",), 409, None),  # a remote of that name
    (
        (
            "did not match any file(s) known to git",
            "invalid reference",
            "not found in upstream",
            "couldn't find remote ref",
            "branch '",  # "error: branch 'x' not found."
        ),
        404,
        "GIT_BRANCH_NOT_FOUND",
    ),
    (
        (
            "would be overwritten",
            "please commit your changes or stash them",
            "needs merge",
        ),
        409,
        "GIT_DIRTY_WORKTREE",
    ),
    (("[remote rejected]", "hook declined"), 422, "GIT_REMOTE_REJECTED"),
    (
        ("[rejected]", "non-fast-forward", "fetch first", "updates were rejected", "stale info"),
        409,
        "GIT_PUSH_REJECTED",
    ),
    (
        ("not possible to fast-forward", "diverging branches", "conflict"),
        409,
        "GIT_MERGE_CONFLICT",
    ),
    (
        (
            "unknown revision",
            "reference is not a tree",
            "does not match any",
            "bad revision",
            "not a valid object name",
            "no such remote",
            "not a commit",
        ),
        404,
        None,
    ),
    (
        (
            "could not resolve host",
            "could not resolve proxy",
            "unable to access",
            "connection refused",
            "connection timed out",
            "network is unreachable",
            "failed to connect",
            "ssl certificate problem",
            "operation timed out",
        ),
        502,
        "GIT_TRANSPORT_FAILED",
    ),
]


def classify(operation: str, output: str, credentials: Credentials | None) -> GitError:
    """The error for a failed git command, from what git said."""
    said = _mask_urls(output.strip())
    if credentials is not None:
        said = credentials.mask(said)
    if len(said) > MAX_MESSAGE:
        said = "..." + said[-MAX_MESSAGE:]
    # "repository 'https://…' not found" reads as "repository not found" for the needles.
    lowered = re.sub(r"repository '[^']*'", "repository", said.lower())
    status, code = 400, None
    for needles, candidate_status, candidate_code in CLASSES:
        if any(needle in lowered for needle in needles):
            status, code = candidate_status, candidate_code
            break
    message = f"{operation} failed: {said}" if said else f"{operation} failed"
    return GitError(message, status=status, code=code, source=DAEMON)


def _mask_urls(text: str) -> str:
    """Hide the user-info of URLs (``https://user:token@host``) git may echo."""
    return re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\1***@", text)


# -- running git in the sandbox -----------------------------------------------------------


async def _read_into(reader: asyncio.StreamReader, kept: bytearray, limit: int) -> None:
    while chunk := await reader.read(1 << 16):
        kept.extend(chunk[: max(limit - len(kept), 0)])


async def run_git(
    engine: Engine,
    record: SandboxRecord,
    args: Sequence[str],
    *,
    operation: str,
    credentials: Credentials | None = None,
    ok_codes: Sequence[int] = (0,),
    stdin: bytes | None = None,
) -> str:
    """Run ``git args`` in the sandbox; its stdout, or the daemon's error for a failure.

    stderr comes back on a pipe of its own, so that what git warns about never mixes
    with the machine-readable output the routes parse.
    """
    env = {
        **BASE_ENV,
        **record.env,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "LC_ALL": "C",  # git's messages in English: they are classified by their words
    }
    config = list(BASE_CONFIG)
    if credentials is not None:
        env["GIT_USERNAME"] = credentials.username
        env["GIT_PASSWORD"] = credentials.password
        config += ["-c", "credential.helper=", "-c", f"credential.helper={CREDENTIAL_HELPER}"]
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    script = f'exec git "$@" 2>&{err_w} {err_w}>&-'
    # bash, not sh: dash cannot redirect descriptors above 9.
    argv = ["/bin/bash", "-c", script, "git", *config, *args]
    try:
        try:
            process = await engine.runtime.spawn(
                record.id,
                argv,
                env=env,
                cwd=rootfs.HOME,
                pass_fds=(err_w,),
                stdin=stdin is not None,
            )
        except (NotRunning, RuntimeError_) as error:
            raise ApiError(str(error), status=409) from None
        finally:
            os.close(err_w)
        loop = asyncio.get_running_loop()
        err_reader = asyncio.StreamReader(limit=1 << 16)
        err_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(err_reader), os.fdopen(err_r, "rb", 0)
        )
        err_r = -1  # the transport owns it now
    except BaseException:
        if err_r >= 0:
            os.close(err_r)
        raise
    assert process.stdout is not None
    if stdin is not None and process.stdin is not None:
        # Small (a credential): the pipe takes it whole, then git sees the end of it.
        process.stdin.write(stdin)
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        process.stdin.close()
    out, err = bytearray(), bytearray()
    readers = [
        asyncio.ensure_future(_read_into(process.stdout, out, MAX_OUTPUT)),
        asyncio.ensure_future(_read_into(err_reader, err, 64 << 10)),
    ]
    try:
        with engine.busy(record.id):
            try:
                exit_code = await asyncio.wait_for(process.wait(), engine.config.exec_timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise RequestTimeout(
                    f"{operation} did not finish within {engine.config.exec_timeout} seconds"
                ) from None
        # Whatever git left running must not hold the answer up: read what is there.
        await asyncio.wait(readers, timeout=DRAIN_SECONDS)
    finally:
        for task in readers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        err_transport.close()
        process.release()
    if exit_code not in ok_codes:
        said = err.decode(errors="replace") or out.decode(errors="replace")
        raise classify(operation, said, credentials)
    return out.decode(errors="replace")


# -- requests ------------------------------------------------------------------------------


def _repo_path(value: str | None) -> str:
    """A path in the sandbox; relative ones start at the home directory, as the daemon's."""
    if not value:
        raise BadRequest("path is required")
    return posixpath.normpath(posixpath.join(rootfs.HOME, value))


def _credentials(body: Body) -> Credentials | None:
    username = body.string("username")
    password = body.string("password")
    if username is None or password is None:
        return None  # the daemon uses them only as a pair
    return Credentials(username, password)


def _ref_name(body: Body, key: str) -> str:
    """A branch or revision name that git cannot take for an option."""
    value = body.string(key, required=True, allow_empty=False, max_length=1024)
    assert value is not None
    if value.startswith("-") or any(ord(ch) < 32 for ch in value):
        raise BadRequest(f"{key} is not a valid git reference name")
    return value


def _optional_ref(body: Body, key: str) -> str | None:
    return _ref_name(body, key) if body.has(key) else None


async def _body(request: Request, allowed: set[str]) -> Body:
    return Body(await read_json(request), allowed)


def _context(request: Request) -> tuple[Engine, SandboxRecord]:
    return _engine(request), _sandbox(request)


# -- routes --------------------------------------------------------------------------------


async def clone(request: Request) -> Response:
    """POST /git/clone {url, path, branch?, commit_id?, username?, password?, depth?,
    insecure_skip_tls?}: 200, empty."""
    engine, record = _context(request)
    allowed = {"url", "path", "branch", "commit_id", "username", "password", "depth"}
    body = await _body(request, allowed | {"insecure_skip_tls"})
    url = body.string("url", required=True, allow_empty=False, max_length=8192)
    assert url is not None
    if url.startswith("-") or any(ord(ch) < 32 for ch in url):
        raise BadRequest("url is not a valid repository address")
    if "://" not in url and not url.startswith(("/", ".", "~")) and ":" not in url:
        url = "https://" + url  # "github.com/org/repo", as the daemon accepts
    path = _repo_path(body.string("path"))
    branch = _optional_ref(body, "branch")
    commit = _optional_ref(body, "commit_id")
    depth = body.integer("depth", None, minimum=1, maximum=1 << 30)
    args: list[str] = []
    if body.boolean("insecure_skip_tls", False):
        args += ["-c", "http.sslVerify=false"]
    args += ["clone", "--single-branch", "--quiet"]
    if branch:
        args += ["--branch", branch]
    if depth:
        args += ["--depth", str(depth)]
    args += ["--", url, path]
    credentials = _credentials(body)
    await run_git(engine, record, args, operation="git clone", credentials=credentials)
    if commit:
        await run_git(
            engine, record, ["-C", path, "checkout", "--quiet", commit], operation="git checkout"
        )
    return Response(status_code=200)


def _path_query(request: Request) -> str:
    query = Query(request.query_params, {"path"})
    return _repo_path(query.string("path"))


async def status(request: Request) -> Response:
    """GET /git/status?path=: GitStatus."""
    engine, record = _context(request)
    path = _path_query(request)
    out = await run_git(
        engine,
        record,
        ["-C", path, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"],
        operation="git status",
    )
    return JSONResponse(parse_status(out))


def parse_status(out: str) -> dict[str, object]:
    """``git status --porcelain=v2 --branch -z`` as Daytona's GitStatus."""
    head, upstream, ahead, behind = "", "", 0, 0
    files: list[dict[str, str]] = []
    fields = out.split("\0")
    index = 0
    while index < len(fields):
        entry = fields[index]
        index += 1
        if entry.startswith("# branch.head "):
            head = entry.removeprefix("# branch.head ")
        elif entry.startswith("# branch.upstream "):
            upstream = entry.removeprefix("# branch.upstream ")
        elif entry.startswith("# branch.ab "):
            plus, minus = entry.removeprefix("# branch.ab ").split()
            ahead, behind = int(plus), -int(minus)
        elif entry.startswith(("1 ", "u ")):
            parts = entry.split(" ", 10 if entry[0] == "u" else 8)
            files.append(_file(parts[-1], parts[1], ""))
        elif entry.startswith("2 "):
            parts = entry.split(" ", 9)
            original = fields[index] if index < len(fields) else ""
            index += 1
            files.append(_file(parts[-1], parts[1], original))
        elif entry.startswith("? "):
            files.append(_file(entry[2:], "??", ""))
    detached = head == "(detached)"
    return {
        "currentBranch": "HEAD" if detached else head,
        "fileStatus": files,
        "branchPublished": bool(upstream),
        "ahead": ahead,
        "behind": behind,
        "detached": detached,
        "upstream": upstream,
    }


def _file(name: str, codes: str, extra: str) -> dict[str, str]:
    return {
        "name": name,
        "extra": extra,
        "staging": STATUS_NAMES.get(codes[0], "Modified"),
        "worktree": STATUS_NAMES.get(codes[1], "Modified"),
    }


async def list_branches(request: Request) -> Response:
    """GET /git/branches?path=: {branches, current}."""
    engine, record = _context(request)
    path = _path_query(request)
    out = await run_git(
        engine,
        record,
        ["-C", path, "for-each-ref", "--format=%(HEAD)%(refname:short)", "refs/heads"],
        operation="git branch",
    )
    branches, current = [], ""
    for line in out.splitlines():
        marker, name = line[:1], line[1:]
        branches.append(name)
        if marker == "*":
            current = name
    if not current:  # an unborn branch (no commit yet) is current but not yet listed
        with contextlib.suppress(ApiError):
            current = (
                await run_git(
                    engine,
                    record,
                    ["-C", path, "symbolic-ref", "--quiet", "--short", "HEAD"],
                    operation="git symbolic-ref",
                )
            ).strip()
    return JSONResponse({"branches": branches, "current": current})


async def create_branch(request: Request) -> Response:
    """POST /git/branches {path, name}: 201; the new branch is checked out (go-git's way)."""
    engine, record = _context(request)
    body = await _body(request, {"path", "name"})
    path = _repo_path(body.string("path"))
    name = _ref_name(body, "name")
    await run_git(
        engine, record, ["-C", path, "checkout", "--quiet", "-b", name], operation="git branch"
    )
    return Response(status_code=201)


async def delete_branch(request: Request) -> Response:
    """DELETE /git/branches {path, name}: 204 (merged or not, as the daemon)."""
    engine, record = _context(request)
    body = await _body(request, {"path", "name"})
    path = _repo_path(body.string("path"))
    name = _ref_name(body, "name")
    await run_git(
        engine, record, ["-C", path, "branch", "--quiet", "-D", "--", name], operation="git branch"
    )
    return Response(status_code=204)


async def checkout(request: Request) -> Response:
    """POST /git/checkout {path, branch}: a branch, or else a commit (detached)."""
    engine, record = _context(request)
    body = await _body(request, {"path", "branch"})
    path = _repo_path(body.string("path"))
    branch = _ref_name(body, "branch")
    await run_git(
        engine, record, ["-C", path, "checkout", "--quiet", branch, "--"], operation="git checkout"
    )
    return Response(status_code=200)


async def add(request: Request) -> Response:
    """POST /git/add {path, files}: stage them ("." for everything)."""
    engine, record = _context(request)
    body = await _body(request, {"path", "files"})
    path = _repo_path(body.string("path"))
    files = body.string_list("files", max_items=MAX_PATHS)
    if files:
        await run_git(engine, record, ["-C", path, "add", "--", *files], operation="git add")
    return Response(status_code=200)


async def commit(request: Request) -> Response:
    """POST /git/commit {path, message, author, email, allow_empty?}: {hash}."""
    engine, record = _context(request)
    body = await _body(request, {"path", "message", "author", "email", "allow_empty"})
    path = _repo_path(body.string("path"))
    message = body.string("message", required=True, max_length=1 << 20)
    author = body.string("author", required=True, allow_empty=False)
    email = body.string("email", required=True, allow_empty=False)
    assert message is not None and author is not None and email is not None
    identity = [
        *("-c", f"user.name={author}", "-c", f"user.email={email}"),
        *("-c", f"author.name={author}", "-c", f"author.email={email}"),
        *("-c", f"committer.name={author}", "-c", f"committer.email={email}"),
    ]
    args = [*identity, "-C", path, "commit", "--quiet", "--no-verify", "--allow-empty-message"]
    args += ["-m", message]
    if body.boolean("allow_empty", False):
        args.append("--allow-empty")
    await run_git(engine, record, args, operation="git commit")
    sha = await run_git(engine, record, ["-C", path, "rev-parse", "HEAD"], operation="git commit")
    return JSONResponse({"hash": sha.strip()})


async def history(request: Request) -> Response:
    """GET /git/history?path=: [GitCommitInfo], newest first."""
    engine, record = _context(request)
    path = _path_query(request)
    try:
        out = await run_git(
            engine,
            record,
            ["-C", path, "log", "-z", "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%B"],
            operation="git log",
        )
    except GitError as error:
        if "does not have any commits yet" in error.message:
            return JSONResponse([])
        raise
    commits = []
    for entry in out.split("\0"):
        fields = entry.lstrip("\n").split("\x1f", 4)
        if len(fields) < 5:
            continue  # the tail of a history longer than MAX_OUTPUT
        sha, name, email, when, text = fields
        commits.append(
            {"hash": sha, "author": name, "email": email, "message": text, "timestamp": when}
        )
    return JSONResponse(commits)


async def _current_branch(engine: Engine, record: SandboxRecord, path: str) -> str:
    try:
        out = await run_git(
            engine, record, ["-C", path, "symbolic-ref", "--quiet", "HEAD"], operation="git push"
        )
    except GitError as error:
        if error.status == 404:
            raise
        raise GitError(
            "git push failed: HEAD is detached; name the branch to push",
            status=404,
            source=DAEMON,
        ) from None
    return out.strip()


async def push(request: Request) -> Response:
    """POST /git/push {path, username?, password?, branch?, remote?, set_upstream?}: the
    branch (the current one by default) to the same name on the remote (origin)."""
    engine, record = _context(request)
    body = await _body(
        request, {"path", "username", "password", "branch", "remote", "set_upstream"}
    )
    path = _repo_path(body.string("path"))
    branch = _optional_ref(body, "branch")
    remote = _optional_ref(body, "remote") or "origin"
    ref = f"refs/heads/{branch}" if branch else await _current_branch(engine, record, path)
    args = ["-C", path, "push", "--quiet", "--no-verify"]
    if body.boolean("set_upstream", False):
        args.append("--set-upstream")
    args += [remote, f"{ref}:{ref}"]
    await run_git(engine, record, args, operation="git push", credentials=_credentials(body))
    return Response(status_code=200)


async def pull(request: Request) -> Response:
    """POST /git/pull {path, username?, password?, branch?, remote?}: fast-forward only."""
    engine, record = _context(request)
    body = await _body(request, {"path", "username", "password", "branch", "remote"})
    path = _repo_path(body.string("path"))
    branch = _optional_ref(body, "branch")
    remote = _optional_ref(body, "remote") or "origin"
    args = ["-C", path, "pull", "--quiet", "--ff-only", "--no-rebase", remote]
    if branch:
        args.append(branch)
    await run_git(engine, record, args, operation="git pull", credentials=_credentials(body))
    return Response(status_code=200)


async def init(request: Request) -> Response:
    """POST /git/init {path, bare?, initial_branch?}: a new repository (directory made)."""
    engine, record = _context(request)
    body = await _body(request, {"path", "bare", "initial_branch"})
    path = _repo_path(body.string("path"))
    args = ["init", "--quiet"]
    if body.boolean("bare", False):
        args.append("--bare")
    initial = _optional_ref(body, "initial_branch")
    if initial:
        args += ["--initial-branch", initial]
    await run_git(engine, record, [*args, "--", path], operation="git init")
    return Response(status_code=200)


async def list_remotes(request: Request) -> Response:
    """GET /git/remotes?path=: {remotes: [{name, url}]}, a password in a URL left out."""
    engine, record = _context(request)
    path = _path_query(request)
    out = await run_git(engine, record, ["-C", path, "remote", "-v"], operation="git remote")
    remotes: dict[str, str] = {}
    for line in out.splitlines():
        name, _, rest = line.partition("\t")
        url, _, kind = rest.rpartition(" ")
        if kind == "(fetch)" and name not in remotes:
            remotes[name] = _without_password(url)
    return JSONResponse({"remotes": [{"name": n, "url": u} for n, u in remotes.items()]})


def _without_password(url: str) -> str:
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*):[^/@\s]*@", r"\1@", url)


async def add_remote(request: Request) -> Response:
    """POST /git/remotes {path, name, url, fetch?, overwrite?}: 201."""
    engine, record = _context(request)
    body = await _body(request, {"path", "name", "url", "fetch", "overwrite"})
    path = _repo_path(body.string("path"))
    name = _ref_name(body, "name")
    url = _ref_name(body, "url")
    if body.boolean("overwrite", False):
        with contextlib.suppress(GitError):
            await run_git(
                engine, record, ["-C", path, "remote", "remove", name], operation="git remote"
            )
    args = ["-C", path, "remote", "add"]
    if body.boolean("fetch", False):
        args.append("-f")
    await run_git(engine, record, [*args, name, url], operation="git remote")
    return Response(status_code=201)


RESET_MODES = ("soft", "mixed", "hard", "merge", "keep")
SCOPES = ("global", "local", "system")
# section[.subsection].name, as git config takes them (the subsection may hold dots).
CONFIG_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9-]*(\.[^\x00-\x1f\x7f]+)?\.[A-Za-z][A-Za-z0-9-]*$")


def _files(body: Body, *, required: bool = False) -> list[str]:
    files = body.string_list("files", max_items=MAX_PATHS) or []
    if required and not files:
        raise BadRequest("files is required")
    return files


async def reset(request: Request) -> Response:
    """POST /git/reset {path, mode?, target?, files?}: HEAD (and index, tree) to a revision."""
    engine, record = _context(request)
    body = await _body(request, {"path", "mode", "target", "files"})
    path = _repo_path(body.string("path"))
    mode = body.string("mode") or "mixed"
    if mode not in RESET_MODES:
        raise BadRequest(f"mode must be one of {', '.join(RESET_MODES)}")
    target = _optional_ref(body, "target")
    files = _files(body)
    if files and mode != "mixed":
        raise BadRequest(f"a {mode} reset cannot be limited to files")
    args = ["-C", path, "reset", "--quiet"]
    if not files:
        args.append(f"--{mode}")
    args += [target or "HEAD", "--", *files]
    await run_git(engine, record, args, operation="git reset")
    return Response(status_code=200)


async def restore(request: Request) -> Response:
    """POST /git/restore {path, files, staged?, worktree?, source?}: the working tree's files
    (by default), the index's (staged) or both, from the index or ``source``."""
    engine, record = _context(request)
    body = await _body(request, {"path", "files", "staged", "worktree", "source"})
    path = _repo_path(body.string("path"))
    files = _files(body, required=True)
    staged = bool(body.boolean("staged", False))
    worktree = body.boolean("worktree")
    args = ["-C", path, "restore"]
    if staged:
        args.append("--staged")
    if worktree or (worktree is None and not staged):
        args.append("--worktree")
    source = _optional_ref(body, "source")
    if source:
        args.append(f"--source={source}")
    await run_git(engine, record, [*args, "--", *files], operation="git restore")
    return Response(status_code=200)


def _scope(scope: str | None, path: str | None) -> list[str]:
    """git config's arguments for a scope (global by default; local needs the repository)."""
    scope = scope or "global"
    if scope not in SCOPES:
        raise BadRequest(f"scope must be one of {', '.join(SCOPES)}")
    if scope != "local":
        return [f"--{scope}"]
    if not path:
        raise BadRequest('path is required when scope is "local"')
    return ["-C", _repo_path(path), "config", "--local"]


def _config_argv(scope: str | None, path: str | None) -> list[str]:
    chosen = _scope(scope, path)
    return chosen if chosen[:1] == ["-C"] else ["config", *chosen]


def _config_key(value: str | None) -> str:
    if not value or not CONFIG_KEY.match(value) or len(value) > 1024:
        raise BadRequest("key must be a git config key such as user.name")
    return value


async def get_config(request: Request) -> Response:
    """GET /git/config?key=&scope=&path=: {value}, null when the key is not set."""
    engine, record = _context(request)
    query = Query(request.query_params, {"key", "scope", "path"})
    key = _config_key(query.string("key"))
    argv = _config_argv(query.string("scope"), query.string("path"))
    out = await run_git(
        engine, record, [*argv, "--get", key], operation="git config", ok_codes=(0, 1)
    )
    return JSONResponse({"value": out[:-1] if out.endswith("\n") else (out or None)})


async def _set_config(
    engine: Engine, record: SandboxRecord, argv: list[str], key: str, value: str
) -> None:
    if any(ord(ch) < 32 and ch != "\t" for ch in value):
        raise BadRequest("value must be one line of text")
    await run_git(engine, record, [*argv, key, value], operation="git config")


async def set_config(request: Request) -> Response:
    """POST /git/config {key, value, scope?, path?}: 200."""
    engine, record = _context(request)
    body = await _body(request, {"key", "value", "scope", "path"})
    key = _config_key(body.string("key"))
    value = body.string("value", required=True, max_length=8192)
    assert value is not None
    argv = _config_argv(body.string("scope"), body.string("path"))
    await _set_config(engine, record, argv, key, value)
    return Response(status_code=200)


async def configure_user(request: Request) -> Response:
    """POST /git/config/user {name, email, scope?, path?}: user.name and user.email."""
    engine, record = _context(request)
    body = await _body(request, {"name", "email", "scope", "path"})
    name = body.string("name", required=True, allow_empty=False, max_length=1024)
    email = body.string("email", required=True, allow_empty=False, max_length=1024)
    assert name is not None and email is not None
    argv = _config_argv(body.string("scope"), body.string("path"))
    await _set_config(engine, record, argv, "user.name", name)
    await _set_config(engine, record, argv, "user.email", email)
    return Response(status_code=200)


def _credential_field(body: Body, key: str, default: str | None = None) -> str:
    value = body.string(key, default, required=default is None, max_length=4096)
    assert value is not None
    # One field per line in git's credential protocol: a newline would forge another.
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise BadRequest(f"{key} must not contain control characters")
    return value


async def authenticate(request: Request) -> Response:
    """POST /git/credentials {username, password, host?, protocol?}: kept in the user's
    ``~/.git-credentials`` (git's credential store, in plain text, as Daytona's) and used by
    every later git command against that host."""
    engine, record = _context(request)
    body = await _body(request, {"username", "password", "host", "protocol"})
    username = _credential_field(body, "username")
    password = _credential_field(body, "password")
    host = _credential_field(body, "host", "github.com") or "github.com"
    protocol = _credential_field(body, "protocol", "https") or "https"
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", protocol):
        raise BadRequest("protocol must be a URL scheme such as https")
    if not re.fullmatch(r"[^/\s@]+", host):
        raise BadRequest("host must be a host name, with a port if any")
    secret = f"protocol={protocol}\nhost={host}\nusername={username}\npassword={password}\n\n"
    credentials = Credentials(username, password)
    await run_git(
        engine,
        record,
        ["credential-store", "store"],
        operation="git credential",
        credentials=credentials,
        stdin=secret.encode(),
    )
    helpers = await run_git(
        engine,
        record,
        ["config", "--global", "--get-all", "credential.helper"],
        operation="git config",
        ok_codes=(0, 1),
    )
    if "store" not in helpers.split():
        await run_git(
            engine,
            record,
            ["config", "--global", "--add", "credential.helper", "store"],
            operation="git config",
        )
    return Response(status_code=200)


def routes() -> list[BaseRoute]:
    """The git routes, mounted at /toolbox."""
    base = "/{sandbox_id}/git"
    return [
        Route(f"{base}/branches", list_branches, methods=["GET"]),
        Route(f"{base}/branches", create_branch, methods=["POST"]),
        Route(f"{base}/branches", delete_branch, methods=["DELETE"]),
        Route(f"{base}/history", history, methods=["GET"]),
        Route(f"{base}/status", status, methods=["GET"]),
        Route(f"{base}/add", add, methods=["POST"]),
        Route(f"{base}/checkout", checkout, methods=["POST"]),
        Route(f"{base}/clone", clone, methods=["POST"]),
        Route(f"{base}/commit", commit, methods=["POST"]),
        Route(f"{base}/pull", pull, methods=["POST"]),
        Route(f"{base}/push", push, methods=["POST"]),
        Route(f"{base}/init", init, methods=["POST"]),
        Route(f"{base}/remotes", list_remotes, methods=["GET"]),
        Route(f"{base}/remotes", add_remote, methods=["POST"]),
        Route(f"{base}/reset", reset, methods=["POST"]),
        Route(f"{base}/restore", restore, methods=["POST"]),
        Route(f"{base}/config", get_config, methods=["GET"]),
        Route(f"{base}/config", set_config, methods=["POST"]),
        Route(f"{base}/config/user", configure_user, methods=["POST"]),
        Route(f"{base}/credentials", authenticate, methods=["POST"]),
    ]
