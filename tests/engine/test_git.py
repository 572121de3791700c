"""The git toolbox: the official SDK's ``sandbox.git``, unmodified, against the engine, with
repositories on the sandbox's own disk (a bare "origin" in /tmp, file:// URLs) and, for
credentials, an HTTP server on the sandbox's own loopback. Nothing leaves the sandbox."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import pytest
from daytona import (
    Daytona,
    DaytonaConflictError,
    DaytonaGitAuthFailedError,
    DaytonaGitBranchExistsError,
    DaytonaGitBranchNotFoundError,
    DaytonaGitDirtyWorktreeError,
    DaytonaGitPushRejectedError,
    DaytonaGitRepoNotFoundError,
    DaytonaGitTransportFailedError,
    Sandbox,
)

from tests.engine_server import EngineServer

AUTHOR = ("Ada Lovelace", "ada@example.com")
ORIGIN = "/tmp/origin.git"


def sh(sandbox: Sandbox, command: str) -> str:
    response = sandbox.process.exec(command)
    assert response.exit_code == 0, response.result
    return response.result


@pytest.fixture(scope="module")
def box(daytona: Daytona) -> Iterator[Sandbox]:
    """A sandbox with a bare origin holding one commit on main (pushed through the SDK)."""
    created = daytona.create()
    git = created.git
    git.init(ORIGIN, bare=True, initial_branch="main")
    git.init("seed", initial_branch="main")
    created.fs.upload_file(b"hello\n", "seed/README.md")
    git.add("seed", ["."])
    git.commit("seed", "first commit", *AUTHOR)
    git.remote_add("seed", "origin", ORIGIN)
    git.push("seed", set_upstream=True)
    yield created
    created.delete()


def test_clone_status_and_branches_of_a_fresh_clone(box: Sandbox) -> None:
    box.git.clone(f"file://{ORIGIN}", "clones/fresh")
    assert box.fs.download_file("clones/fresh/README.md") == b"hello\n"
    status = box.git.status("clones/fresh")
    assert status.current_branch == "main"
    assert (status.branch_published, status.upstream, status.ahead, status.behind) == (
        True,
        "origin/main",
        0,
        0,
    )
    assert status.detached is False
    assert status.file_status == []
    branches = box.git.branches("clones/fresh")
    assert (branches.branches, branches.current) == (["main"], "main")


def test_branch_edit_add_commit_checkout_and_delete(box: Sandbox) -> None:
    path = "clones/edit"
    box.git.clone(ORIGIN, path)  # a plain path works too
    box.git.create_branch(path, "feature")
    assert box.git.branches(path).current == "feature"
    box.fs.upload_file(b"hello, world\n", f"{path}/README.md")
    box.fs.upload_file(b"new\n", f"{path}/docs/new.txt")
    status = {f.name: (f.staging, f.worktree) for f in box.git.status(path).file_status}
    assert status == {
        "README.md": ("Unmodified", "Modified"),
        "docs/new.txt": ("Untracked", "Untracked"),
    }
    box.git.add(path, ["README.md", "docs"])
    status = {f.name: (f.staging, f.worktree) for f in box.git.status(path).file_status}
    assert status == {
        "README.md": ("Modified", "Unmodified"),
        "docs/new.txt": ("Added", "Unmodified"),
    }
    commit = box.git.commit(path, "edit readme\n\nwith a body", *AUTHOR)
    assert commit.sha == sh(box, f"git -C {path} rev-parse HEAD").strip()
    author = sh(box, f"git -C {path} log -1 --format='%an <%ae>|%cn <%ce>'").strip()
    assert author == "Ada Lovelace <ada@example.com>|Ada Lovelace <ada@example.com>"
    assert box.git.status(path).file_status == []
    box.git.checkout_branch(path, "main")
    assert box.fs.download_file(f"{path}/README.md") == b"hello\n"
    box.git.delete_branch(path, "feature")  # unmerged: deleted anyway, as the daemon does
    assert box.git.branches(path).branches == ["main"]


def test_history_lists_commits_newest_first(box: Sandbox, toolbox: httpx.Client) -> None:
    path = "clones/history"
    box.git.clone(ORIGIN, path)
    box.fs.upload_file(b"2\n", f"{path}/two.txt")
    box.git.add(path, ["two.txt"])
    sha = box.git.commit(path, "second", *AUTHOR).sha
    response = toolbox.get(f"/{box.id}/git/history", params={"path": path})
    assert response.status_code == 200
    commits = response.json()
    assert [c["message"].strip() for c in commits] == ["second", "first commit"]
    assert commits[0]["hash"] == sha
    assert (commits[0]["author"], commits[0]["email"]) == AUTHOR
    assert commits[0]["timestamp"][:4].isdigit()


def test_an_empty_commit_needs_allow_empty(box: Sandbox, toolbox: httpx.Client) -> None:
    box.git.clone(ORIGIN, "clones/empty")
    refused = toolbox.post(
        f"/{box.id}/git/commit",
        json={"path": "clones/empty", "message": "m", "author": "A", "email": "a@b"},
    )
    assert refused.status_code == 400
    assert "nothing to commit" in refused.json()["message"]
    sha = box.git.commit("clones/empty", "marker", *AUTHOR, allow_empty=True).sha
    assert sh(box, "git -C clones/empty log -1 --format=%H%s").strip() == sha + "marker"


def test_push_then_pull_moves_a_commit_between_clones(box: Sandbox) -> None:
    box.git.clone(ORIGIN, "clones/writer")
    box.git.clone(ORIGIN, "clones/reader")
    box.fs.upload_file(b"from the writer\n", "clones/writer/shared.txt")
    box.git.add("clones/writer", ["shared.txt"])
    box.git.commit("clones/writer", "share", *AUTHOR)
    assert box.git.status("clones/writer").ahead == 1
    box.git.push("clones/writer")
    assert box.git.status("clones/writer").ahead == 0
    box.git.pull("clones/reader")
    assert box.fs.download_file("clones/reader/shared.txt") == b"from the writer\n"
    box.git.pull("clones/reader")  # already up to date is fine


def test_a_push_behind_the_remote_is_rejected(box: Sandbox) -> None:
    box.git.clone(ORIGIN, "clones/late")
    box.git.clone(ORIGIN, "clones/early")
    for name in ("early", "late"):
        box.fs.upload_file(name.encode(), f"clones/{name}/{name}.txt")
        box.git.add(f"clones/{name}", ["."])
        box.git.commit(f"clones/{name}", name, *AUTHOR)
    box.git.push("clones/early")
    with pytest.raises(DaytonaGitPushRejectedError):
        box.git.push("clones/late")


def test_clone_of_a_branch_and_of_a_commit(box: Sandbox) -> None:
    first = sh(box, f"git -C {ORIGIN} rev-parse main").strip()
    box.git.clone(ORIGIN, "clones/devsrc")
    box.git.create_branch("clones/devsrc", "dev")
    box.fs.upload_file(b"dev\n", "clones/devsrc/dev.txt")
    box.git.add("clones/devsrc", ["."])
    box.git.commit("clones/devsrc", "on dev", *AUTHOR)
    box.git.push("clones/devsrc", branch="dev", set_upstream=True)
    box.git.clone(ORIGIN, "clones/dev", branch="dev")
    branches = box.git.branches("clones/dev")
    assert (branches.branches, branches.current) == (["dev"], "dev")  # single-branch
    assert box.fs.download_file("clones/dev/dev.txt") == b"dev\n"
    box.git.clone(ORIGIN, "clones/pinned", commit_id=first)
    status = box.git.status("clones/pinned")
    assert (status.detached, status.current_branch) == (True, "HEAD")
    assert sh(box, "git -C clones/pinned rev-parse HEAD").strip() == first


def test_git_errors_are_the_sdks_typed_errors(box: Sandbox) -> None:
    box.git.clone(ORIGIN, "clones/errors")
    with pytest.raises(DaytonaGitRepoNotFoundError):
        box.git.status("not-a-repo-here")
    with pytest.raises(DaytonaGitRepoNotFoundError):
        box.git.clone("/tmp/no-such-origin.git", "clones/none")
    with pytest.raises(DaytonaGitBranchExistsError):
        box.git.create_branch("clones/errors", "main")
    with pytest.raises(DaytonaGitBranchNotFoundError):
        box.git.checkout_branch("clones/errors", "no-such-branch")
    with pytest.raises(DaytonaGitBranchNotFoundError):
        box.git.clone(ORIGIN, "clones/nobranch", branch="no-such-branch")
    box.git.create_branch("clones/errors", "other")
    box.fs.upload_file(b"other\n", "clones/errors/README.md")
    box.git.add("clones/errors", ["."])
    box.git.commit("clones/errors", "other readme", *AUTHOR)
    box.git.checkout_branch("clones/errors", "main")
    box.fs.upload_file(b"uncommitted\n", "clones/errors/README.md")
    with pytest.raises(DaytonaGitDirtyWorktreeError):
        box.git.checkout_branch("clones/errors", "other")


def test_remotes_are_listed_added_and_overwritten(box: Sandbox) -> None:
    assert [(r.name, r.url) for r in box.git.remotes("seed").remotes] == [("origin", ORIGIN)]
    box.git.remote_add("seed", "mirror", "https://bob:pa55word@example.invalid/repo.git")
    listed = {r.name: r.url for r in box.git.remotes("seed").remotes}
    assert listed["mirror"] == "https://bob@example.invalid/repo.git"  # no password shown
    assert box.git.remote_get("seed", "mirror") == "https://bob@example.invalid/repo.git"
    with pytest.raises(DaytonaConflictError):
        box.git.remote_add("seed", "mirror", "/tmp/elsewhere.git")
    box.git.remote_add("seed", "mirror", "/tmp/elsewhere.git", overwrite=True)
    assert box.git.remote_get("seed", "mirror") == "/tmp/elsewhere.git"
    box.git.remote_add("seed", "fetched", ORIGIN, fetch=True)
    assert "fetched/main" in sh(box, "git -C seed branch -r")


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "clone", {"path": "x"}),
        ("POST", "clone", {"url": "--upload-pack=touch /tmp/pwned", "path": "x"}),
        ("POST", "branches", {"path": "clones/fresh", "name": "-D"}),
        ("POST", "checkout", {"path": "clones/fresh"}),
        ("POST", "commit", {"path": "clones/fresh", "message": "m", "author": "", "email": "e"}),
        ("POST", "add", {"path": "clones/fresh", "files": "README.md"}),
        ("POST", "push", {"path": "clones/fresh", "unknown": 1}),
        ("DELETE", "branches", {"path": "clones/fresh"}),
    ],
)
def test_bad_git_requests_are_400(
    toolbox: httpx.Client, box: Sandbox, method: str, route: str, body: dict
) -> None:
    response = toolbox.request(method, f"/{box.id}/git/{route}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["message"]


def test_malformed_json_and_a_missing_path_are_400(toolbox: httpx.Client, box: Sandbox) -> None:
    assert toolbox.post(f"/{box.id}/git/clone", content=b"{").status_code == 400
    missing = toolbox.get(f"/{box.id}/git/status")
    assert missing.status_code == 400
    assert missing.json()["message"] == "path is required"


def test_an_error_body_is_the_daemons(toolbox: httpx.Client, box: Sandbox) -> None:
    response = toolbox.get(f"/{box.id}/git/status", params={"path": "/tmp"})
    assert response.status_code == 404
    body = response.json()
    assert (body["code"], body["source"]) == ("GIT_REPO_NOT_FOUND", "DAYTONA_DAEMON")
    assert "not a git repository" in body["message"]


# -- credentials ---------------------------------------------------------------------------

# A stand-in for a private remote, on the sandbox's own loopback: 401 without the right
# Basic credentials, 404 with them; every Authorization header it saw is logged.
AUTH_SERVER = """
import base64, http.server, sys
want = "Basic " + base64.b64encode(b"alice:hunter2-secret-token").decode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        got = self.headers.get("Authorization") or "-"
        open("/tmp/auth.log", "a").write(got + "\\n")
        if got != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        self.send_response(404)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture(scope="module")
def auth_server(box: Sandbox) -> str:
    box.fs.upload_file(AUTH_SERVER.encode(), "/tmp/auth_server.py")
    sh(box, "nohup python3 /tmp/auth_server.py 8765 >/dev/null 2>&1 &")
    deadline = time.monotonic() + 20
    probe = "python3 -c \"import socket; socket.create_connection(('127.0.0.1', 8765))\""
    while box.process.exec(probe).exit_code:
        assert time.monotonic() < deadline, "the test's git server did not come up"
        time.sleep(0.2)
    return "http://127.0.0.1:8765/private.git"


def test_credentials_reach_the_remote_and_are_never_echoed(
    box: Sandbox, auth_server: str, api: httpx.Client, engine: EngineServer
) -> None:
    with pytest.raises(DaytonaGitAuthFailedError):
        box.git.clone(auth_server, "clones/private-none")
    with pytest.raises(DaytonaGitAuthFailedError) as wrong:
        box.git.clone(auth_server, "clones/private-bad", username="alice", password="wrong-pass")
    assert "wrong-pass" not in str(wrong.value)
    # The right pair gets past authentication (this remote then has no such repository).
    with pytest.raises(DaytonaGitRepoNotFoundError) as right:
        box.git.clone(
            auth_server, "clones/private", username="alice", password="hunter2-secret-token"
        )
    assert "hunter2-secret-token" not in str(right.value)
    seen = box.fs.download_file("/tmp/auth.log").decode()
    expected = "Basic " + base64.b64encode(b"alice:hunter2-secret-token").decode()
    assert expected in seen.splitlines()
    # Not in what the engine keeps: its log and its audit trail.
    assert b"hunter2-secret-token" not in engine.log_path.read_bytes()
    organization = api.get("/organizations").json()[0]["id"]
    audit = api.get(f"/audit/organizations/{organization}", params={"limit": 200})
    assert audit.status_code == 200
    assert "git_clone" in audit.text  # the failed clones are there, without the secret
    assert "hunter2-secret-token" not in audit.text


def test_credentials_in_the_url_are_masked_in_errors(box: Sandbox) -> None:
    url = "http://bob:url-secret-42@127.0.0.1:1/repo.git"  # nothing listens on port 1
    with pytest.raises(DaytonaGitTransportFailedError) as raised:
        box.git.clone(url, "clones/unreachable")
    assert "url-secret-42" not in str(raised.value)


# -- reset, restore, config and stored credentials -------------------------------------------


def test_reset_moves_head_and_unstages_and_hard_discards(box: Sandbox) -> None:
    path = "clones/reset"
    box.git.clone(ORIGIN, path)
    first = sh(box, f"git -C {path} rev-parse HEAD").strip()
    box.fs.upload_file(b"second\n", f"{path}/second.txt")
    box.git.add(path, ["second.txt"])
    box.git.commit(path, "second", *AUTHOR)
    box.fs.upload_file(b"staged\n", f"{path}/staged.txt")
    box.git.add(path, ["staged.txt"])
    box.git.reset(path, files=["staged.txt"])  # mixed, limited to a file: unstaged
    names = {f.name: (f.staging, f.worktree) for f in box.git.status(path).file_status}
    assert names["staged.txt"] == ("Untracked", "Untracked")
    box.git.reset(path, mode="soft", target="HEAD~1")
    assert sh(box, f"git -C {path} rev-parse HEAD").strip() == first
    assert sh(box, f"git -C {path} diff --cached --name-only").split() == ["second.txt"]
    box.git.reset(path, mode="hard")
    assert sh(box, f"test -e {path}/second.txt || echo gone").strip() == "gone"
    assert box.fs.download_file(f"{path}/staged.txt") == b"staged\n"  # untracked: kept


def test_restore_discards_worktree_changes_or_unstages(box: Sandbox) -> None:
    path = "clones/restore"
    box.git.clone(ORIGIN, path)
    box.fs.upload_file(b"edited\n", f"{path}/README.md")
    box.git.restore(path, ["README.md"])
    assert box.fs.download_file(f"{path}/README.md") == b"hello\n"
    box.fs.upload_file(b"edited again\n", f"{path}/README.md")
    box.git.add(path, ["README.md"])
    box.git.restore(path, ["README.md"], staged=True)
    (entry,) = box.git.status(path).file_status
    assert (entry.staging, entry.worktree) == ("Unmodified", "Modified")
    assert box.fs.download_file(f"{path}/README.md") == b"edited again\n"
    box.git.restore(path, ["README.md"], staged=True, worktree=True, source="HEAD")
    assert box.git.status(path).file_status == []


def test_config_is_set_read_and_scoped(box: Sandbox) -> None:
    path = "clones/config"
    box.git.clone(ORIGIN, path)
    assert box.git.get_config("sandbar.unset") is None
    box.git.set_config("sandbar.colour", "-blue and green")  # a leading dash is a value
    assert box.git.get_config("sandbar.colour") == "-blue and green"
    box.git.set_config("sandbar.colour", "red", scope="local", path=path)
    assert box.git.get_config("sandbar.colour", scope="local", path=path) == "red"
    assert box.git.get_config("sandbar.colour") == "-blue and green"
    box.git.configure_user("Grace Hopper", "grace@example.com", scope="local", path=path)
    assert sh(box, f"git -C {path} config user.email").strip() == "grace@example.com"
    assert box.git.get_config("user.name", scope="local", path=path) == "Grace Hopper"


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "reset", {"path": "clones/fresh", "mode": "sideways"}),
        ("POST", "reset", {"path": "clones/fresh", "mode": "hard", "files": ["README.md"]}),
        ("POST", "reset", {"path": "clones/fresh", "target": "--hard"}),
        ("POST", "restore", {"path": "clones/fresh"}),
        ("POST", "restore", {"path": "clones/fresh", "files": []}),
        ("POST", "config", {"key": "user.name"}),
        ("POST", "config", {"key": "no-dot", "value": "x"}),
        ("POST", "config", {"key": "a.b", "value": "two\nlines"}),
        ("POST", "config", {"key": "a.b", "value": "x", "scope": "local"}),
        ("POST", "config", {"key": "a.b", "value": "x", "scope": "planet"}),
        ("POST", "config/user", {"name": "", "email": "x@example.com"}),
        ("POST", "credentials", {"username": "u"}),
        ("POST", "credentials", {"username": "u\nhost=evil", "password": "p"}),
        ("POST", "credentials", {"username": "u", "password": "p", "host": "a/b"}),
        ("POST", "credentials", {"username": "u", "password": "p", "protocol": "Ht tp"}),
    ],
)
def test_bad_reset_restore_config_and_credentials_requests_are_400(
    toolbox: httpx.Client, box: Sandbox, method: str, route: str, body: dict
) -> None:
    response = toolbox.request(method, f"/{box.id}/git/{route}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["message"]


def test_a_bad_config_query_is_400(toolbox: httpx.Client, box: Sandbox) -> None:
    for params in ({}, {"key": "x"}, {"key": "a.b", "scope": "local"}, {"key": "a.b", "x": "1"}):
        assert toolbox.get(f"/{box.id}/git/config", params=params).status_code == 400


def test_stored_credentials_are_used_by_later_commands_and_never_echoed(
    box: Sandbox, auth_server: str, api: httpx.Client, engine: EngineServer
) -> None:
    with pytest.raises(DaytonaGitAuthFailedError):
        box.git.clone(auth_server, "clones/stored-none")
    box.git.dangerously_authenticate(
        "alice", "hunter2-secret-token", host="127.0.0.1:8765", protocol="http"
    )
    # No credentials in the request: the stored ones get past authentication.
    with pytest.raises(DaytonaGitRepoNotFoundError):
        box.git.clone(auth_server, "clones/stored")
    assert box.git.get_config("credential.helper") == "store"
    stored = box.fs.download_file("/home/daytona/.git-credentials").decode()
    assert stored.strip() == "http://alice:hunter2-secret-token@127.0.0.1%3a8765"
    assert b"hunter2-secret-token" not in engine.log_path.read_bytes()
    organization = api.get("/organizations").json()[0]["id"]
    audit = api.get(f"/audit/organizations/{organization}", params={"limit": 200})
    assert "hunter2-secret-token" not in audit.text
    sh(box, "rm ~/.git-credentials && git config --global --unset-all credential.helper")
