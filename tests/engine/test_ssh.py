"""SSH access: Daytona's token routes, and the engine's SSH gateway driven by the real
OpenSSH client (ssh, scp, sftp from openssh-client), on loopback only."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daytona import Daytona, DaytonaConfig, Sandbox

from tests.engine_server import EngineServer, start_engine

pytestmark = pytest.mark.timeout(180)

QUIET = ("-o", "LogLevel=ERROR")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """An engine with its SSH gateway on a free loopback port (0: the engine picks)."""
    server = start_engine(
        tmp_path_factory.mktemp("ssh-engine"),
        SANDBAR_ENGINE_SSH_PORT="0",
        SANDBAR_ENGINE_WARM_POOL="0",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sdk(gateway: EngineServer) -> Daytona:
    return Daytona(DaytonaConfig(api_url=gateway.api_url, api_key=gateway.api_key))


@pytest.fixture(scope="module")
def http(gateway: EngineServer) -> Iterator[httpx.Client]:
    with gateway.client() as client:
        yield client


@pytest.fixture(scope="module")
def box(sdk: Daytona) -> Iterator[Sandbox]:
    created = sdk.create()
    yield created
    created.delete()


def target(command: str) -> tuple[str, str]:
    """(port, user@host) from Daytona's sshCommand ``ssh -p PORT TOKEN@HOST``."""
    match = re.fullmatch(r"ssh -p (\d+) (\S+@\S+)", command)
    assert match, command
    return match.group(1), match.group(2)


def ssh_argv(command: str, *extra: str, program: str = "ssh") -> list[str]:
    """The client, with no user config, keys, agent or known-hosts prompt."""
    port, destination = target(command)
    port_flag = "-P" if program in ("scp", "sftp") else "-p"
    return [
        program, "-F", "/dev/null", port_flag, port,
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentityAgent=none",
        "-o", "ConnectTimeout=10", *extra,
    ] + ([destination] if program == "ssh" else [])  # fmt: skip


def ssh(
    command: str, remote: str, *options: str, stdin: bytes = b"", quiet: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run the ssh client to completion: ``remote`` in the sandbox, with ``options``."""
    argv = [*ssh_argv(command, *(QUIET if quiet else ()), *options), remote]
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=60, check=False)


def access(http: httpx.Client, sandbox_id: str, minutes: float = 5) -> dict:
    response = http.post(f"/sandbox/{sandbox_id}/ssh-access", params={"expiresInMinutes": minutes})
    assert response.status_code == 200, response.text
    return response.json()


# -- the routes ---------------------------------------------------------------------


def test_the_sdk_creates_access_in_daytonas_shape(box: Sandbox) -> None:
    dto = box.create_ssh_access(expires_in_minutes=30)
    assert dto.sandbox_id == box.id
    assert re.fullmatch(r"[A-Za-z0-9]{32}", dto.token)
    assert dto.ssh_command.endswith(f" {dto.token}@127.0.0.1")
    lifetime = (dto.expires_at - dto.created_at).total_seconds()
    assert 30 * 60 - 2 <= lifetime <= 30 * 60 + 2
    assert box.validate_ssh_access(dto.token).valid is True
    assert box.validate_ssh_access(dto.token).sandbox_id == box.id


def test_validate_answers_invalid_with_a_null_sandbox_as_daytona(http: httpx.Client) -> None:
    response = http.get("/sandbox/ssh-access/validate", params={"token": "x" * 32})
    assert response.status_code == 200
    assert response.json() == {"valid": False, "sandboxId": None}


def test_bad_input_is_a_4xx(http: httpx.Client, box: Sandbox) -> None:
    for value in ("soon", "-1", "0", "nan", "1e9"):
        response = http.post(f"/sandbox/{box.id}/ssh-access", params={"expiresInMinutes": value})
        assert response.status_code == 400, (value, response.text)
    assert http.post("/sandbox/no-such-sandbox/ssh-access").status_code == 404
    assert http.delete("/sandbox/no-such-sandbox/ssh-access").status_code == 404
    assert http.get("/sandbox/ssh-access/validate").status_code == 400
    assert http.post(f"/sandbox/{box.id}/ssh-access", params={"bogus": "1"}).status_code == 400


def test_an_engine_without_an_ssh_port_says_how_to_turn_it_on(api: httpx.Client) -> None:
    response = api.post("/sandbox/any/ssh-access")
    assert response.status_code == 503
    assert "SANDBAR_ENGINE_SSH_PORT" in response.json()["message"]


def test_an_engine_whose_ssh_port_is_taken_does_not_start_and_says_why(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=r"SSH gateway cannot listen on 127\.0\.0\.1 port"):
            start_engine(
                tmp_path_factory.mktemp("ssh-taken"),
                SANDBAR_ENGINE_SSH_PORT=str(port),
                SANDBAR_ENGINE_WARM_POOL="0",
            )


def test_only_a_hash_of_the_token_is_stored(gateway: EngineServer, box: Sandbox) -> None:
    dto = box.create_ssh_access()
    database = (gateway.data_dir / "engine" / "engine.sqlite3").read_bytes()
    wal = gateway.data_dir / "engine" / "engine.sqlite3-wal"
    stored = database + (wal.read_bytes() if wal.exists() else b"")
    assert dto.token.encode() not in stored
    assert dto.id.encode() in stored


# -- commands and shells ------------------------------------------------------------


def test_a_command_runs_as_the_sandbox_user_and_passes_its_exit_status(box: Sandbox) -> None:
    dto = box.create_ssh_access()
    done = ssh(dto.ssh_command, "echo hi; id -un; pwd; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout.decode().split() == ["hi", "daytona", "/home/daytona"]


def test_stdout_stderr_and_stdin_stay_apart(box: Sandbox) -> None:
    dto = box.create_ssh_access()
    done = ssh(dto.ssh_command, "tr a-z A-Z; echo oops >&2; test -t 0 || echo no-tty", stdin=b"abc")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"ABCno-tty\n"
    assert done.stderr == b"oops\n"


def test_a_large_output_arrives_whole(box: Sandbox) -> None:
    dto = box.create_ssh_access()
    done = ssh(dto.ssh_command, "head -c 20000000 /dev/zero | tr '\\0' x")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) == 20_000_000 and set(done.stdout) == {ord("x")}


def test_a_slow_client_gets_all_output_of_a_command_that_has_exited(box: Sandbox) -> None:
    # The command is done long before the client reads: what the engine holds for it
    # must still arrive, however long the client takes.
    dto = box.create_ssh_access()
    with subprocess.Popen(
        [*ssh_argv(dto.ssh_command, *QUIET), "head -c 3000000 /dev/zero; echo done >&2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as client:  # fmt: skip
        time.sleep(3)  # not reading: the client's pipe fills and it stops reading too
        out, err = client.communicate(timeout=60)
    assert len(out) == 3_000_000 and client.returncode == 0, err
    assert err == b"done\n"


def test_a_background_child_holding_the_output_open_does_not_hold_the_session(
    box: Sandbox,
) -> None:
    dto = box.create_ssh_access()
    started = time.monotonic()
    done = ssh(dto.ssh_command, "sleep 30 & echo parent; exit 5")
    assert done.returncode == 5 and done.stdout == b"parent\n"
    assert time.monotonic() - started < 15


def _read_until(master: int, pattern: str, timeout: float = 20) -> re.Match[str]:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
            match = re.search(pattern, seen.decode(errors="replace"))
            if match:
                return match
    raise AssertionError(f"{pattern!r} not in {seen[-2000:]!r}")


def _winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_a_pty_shell_has_the_clients_size_follows_a_resize_and_passes_exit(box: Sandbox) -> None:
    dto = box.create_ssh_access()
    master, slave = os.openpty()
    _winsize(slave, 40, 100)
    client = subprocess.Popen(
        ssh_argv(dto.ssh_command, *QUIET, "-tt"),
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        os.write(master, b"stty size | sed 's/^/SIZE=/'\n")
        assert _read_until(master, r"SIZE=(\d+) (\d+)").groups() == ("40", "100")
        # ssh reads its terminal's new size when told (the kernel would tell a
        # controlling terminal's process group; this one has none).
        _winsize(master, 30, 120)
        client.send_signal(signal.SIGWINCH)
        # The client sends the change when it next runs; ask until it has arrived (a
        # lost resize keeps answering 40 100 until the deadline).
        deadline, size = time.monotonic() + 20, ("40", "100")
        for attempt in range(100):
            os.write(master, f"stty size | sed 's/^/NEW{attempt}=/'\n".encode())
            size = _read_until(master, rf"NEW{attempt}=(\d+) (\d+)").groups()
            if size != ("40", "100") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert size == ("30", "120")
        os.write(master, b"exit 7\n")
        assert client.wait(timeout=20) == 7
    finally:
        with contextlib.suppress(ProcessLookupError):
            client.kill()
        client.wait()
        os.close(master)


def test_a_forced_tty_command_sees_a_terminal(box: Sandbox) -> None:
    dto = box.create_ssh_access()
    done = ssh(dto.ssh_command, "test -t 0 && echo tty; echo $TERM; exit 4", "-tt")
    assert done.returncode == 4, done.stderr
    assert b"tty\r\n" in done.stdout


# -- refusals -----------------------------------------------------------------------


def test_an_expired_token_is_refused(http: httpx.Client, box: Sandbox) -> None:
    dto = access(http, box.id, minutes=0.01)  # 0.6 s
    time.sleep(1)
    done = ssh(dto["sshCommand"], "echo hi", quiet=False)
    assert done.returncode == 255
    assert b"Permission denied" in done.stderr
    assert b"invalid, expired or revoked" in done.stderr
    assert done.stdout == b""
    check = http.get("/sandbox/ssh-access/validate", params={"token": dto["token"]})
    assert check.json()["valid"] is False


def test_a_revoked_token_is_refused_and_its_open_session_ends(box: Sandbox) -> None:
    dto = box.create_ssh_access()
    with subprocess.Popen(
        [*ssh_argv(dto.ssh_command, *QUIET), "echo started; sleep 60"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as long:  # fmt: skip
        try:
            assert long.stdout is not None
            assert long.stdout.readline() == b"started\n"
            box.revoke_ssh_access(dto.token)
            long.wait(timeout=10)  # ended by the engine, well before the sleep's 60 s
        finally:
            long.kill()
    done = ssh(dto.ssh_command, "echo hi")
    assert done.returncode == 255 and done.stdout == b""
    assert box.validate_ssh_access(box.create_ssh_access().token).valid


def test_a_new_token_replaces_the_sandboxs_previous_one_as_daytona(box: Sandbox) -> None:
    first = box.create_ssh_access()
    second = box.create_ssh_access()
    assert ssh(first.ssh_command, "true").returncode == 255
    assert ssh(second.ssh_command, "true").returncode == 0


def test_revoking_without_a_token_revokes_all_and_answers_the_sandbox(
    http: httpx.Client, box: Sandbox
) -> None:
    dto = access(http, box.id)
    response = http.delete(f"/sandbox/{box.id}/ssh-access")
    assert response.status_code == 200 and response.json()["id"] == box.id
    assert ssh(dto["sshCommand"], "true").returncode == 255


def test_stopping_ends_sessions_and_a_stopped_sandbox_gets_a_clear_message(sdk: Daytona) -> None:
    other = sdk.create()
    try:
        dto = other.create_ssh_access()
        with subprocess.Popen(
            [*ssh_argv(dto.ssh_command, *QUIET), "echo started; sleep 60"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ) as long:  # fmt: skip
            try:
                assert long.stdout is not None
                assert long.stdout.readline() == b"started\n"
                other.stop()
                long.wait(timeout=10)
            finally:
                long.kill()
        done = ssh(dto.ssh_command, "echo hi")
        assert done.returncode == 1
        assert b"is not started (state: stopped)" in done.stderr
        other.start()
        assert ssh(dto.ssh_command, "echo hi").stdout == b"hi\n"
    finally:
        other.delete()


def test_a_fork_of_the_sandbox_leaves_its_sessions_running(box: Sandbox) -> None:
    dto = box.create_ssh_access()
    with subprocess.Popen(
        [*ssh_argv(dto.ssh_command, *QUIET), "echo started; sleep 2; echo after"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as long:  # fmt: skip
        assert long.stdout is not None
        assert long.stdout.readline() == b"started\n"
        fork = box.fork()
        try:
            assert long.stdout.readline() == b"after\n"
            assert long.wait(timeout=30) == 0
        finally:
            fork.delete()


def test_port_forwarding_is_refused(gateway: EngineServer, box: Sandbox) -> None:
    # A token reaches its sandbox's shell and files, never the engine's own network.
    dto = box.create_ssh_access()
    done = subprocess.run(
        [*ssh_argv(dto.ssh_command, *QUIET, "-W", f"127.0.0.1:{gateway.port}")],
        input=b"GET /api/health HTTP/1.0\r\n\r\n", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 255
    assert b"HTTP/" not in done.stdout
    assert b"forwarding failed" in done.stderr, done.stderr


# -- files --------------------------------------------------------------------------


def test_scp_copies_files_in_and_out_as_the_sandbox_user(box: Sandbox, tmp_path: Path) -> None:
    dto = box.create_ssh_access()
    _port, destination = target(dto.ssh_command)
    payload = os.urandom(3 << 20)
    (tmp_path / "up.bin").write_bytes(payload)
    put = subprocess.run(
        [*ssh_argv(dto.ssh_command, *QUIET, program="scp"), str(tmp_path / "up.bin"),
         f"{destination}:copied.bin"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert put.returncode == 0, put.stderr
    assert box.fs.download_file("/home/daytona/copied.bin") == payload
    owner = box.process.exec("stat -c %U:%a /home/daytona/copied.bin").result.strip()
    assert owner == "daytona:644"
    get = subprocess.run(
        [*ssh_argv(dto.ssh_command, *QUIET, program="scp"), f"{destination}:copied.bin",
         str(tmp_path / "down.bin")],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert get.returncode == 0, get.stderr
    assert (tmp_path / "down.bin").read_bytes() == payload
    legacy = subprocess.run(
        [*ssh_argv(dto.ssh_command, *QUIET, "-O", program="scp"), str(tmp_path / "up.bin"),
         f"{destination}:legacy.bin"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert legacy.returncode == 0, legacy.stderr
    assert box.fs.download_file("/home/daytona/legacy.bin") == payload


def test_sftp_stays_inside_the_sandbox_and_its_users_rights(box: Sandbox, tmp_path: Path) -> None:
    dto = box.create_ssh_access()
    _port, destination = target(dto.ssh_command)
    box.process.exec("ln -sfn ../../../../../.. /home/daytona/up; mkdir -p /home/daytona/d")
    batch = (
        "pwd\n"
        f"get up/etc/passwd {tmp_path}/passwd\n"
        "mkdir d/made\n"
        "rename d/made d/renamed\n"
        "ls -l d\n"
        "-put /etc/hostname /etc/sandbar-ssh-test\n"
        "ln -s renamed d/link\n"
        "chmod 700 d/renamed\n"
        "put /etc/hostname d/renamed/file\n"
        "df /home/daytona\n"
        "rm d/renamed/file\n"
        "rmdir d/renamed\n"
    )
    done = subprocess.run(
        [*ssh_argv(dto.ssh_command, *QUIET, program="sftp"), "-b", "-", destination],
        input=batch.encode(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output = done.stdout.decode()
    assert "Remote working directory: /home/daytona" in output
    # The link leads to the sandbox's own root, never the host's.
    assert "daytona:x:1000:1000" in (tmp_path / "passwd").read_text()
    assert re.search(r"d[rwx-]{9} .* daytona +daytona .* renamed\n", output), output
    # /etc belongs to root, whom the sandbox user is not.
    assert "Permission denied" in done.stderr.decode()
    assert box.process.exec("test -e /etc/sandbar-ssh-test; echo $?").result.strip() == "1"
    listing = box.process.exec("stat -c '%F %N' /home/daytona/d/link; ls /home/daytona/d").result
    assert listing.split("\n")[:2] == ["symbolic link '/home/daytona/d/link' -> 'renamed'", "link"]


# -- audit and host key -------------------------------------------------------------


def test_each_session_is_audited_with_its_token_and_duration(
    http: httpx.Client, box: Sandbox
) -> None:
    dto = box.create_ssh_access()
    assert ssh(dto.ssh_command, "sleep 0.5; exit 2").returncode == 2
    _port, destination = target(dto.ssh_command)
    sftp = subprocess.run(
        [*ssh_argv(dto.ssh_command, *QUIET, program="sftp"), "-b", "-", destination],
        input=b"pwd\n", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert sftp.returncode == 0, sftp.stderr
    box.revoke_ssh_access(dto.token)
    organization = http.get("/sandbox").json()
    org_id = (organization["items"] if isinstance(organization, dict) else organization)[0][
        "organizationId"
    ]
    entries = http.get(f"/audit/organizations/{org_id}", params={"limit": 200}).json()["items"]
    sessions = [e for e in entries if e["action"] == "ssh_session" and e["actorId"] == dto.id]
    assert [e["metadata"]["kind"] for e in sessions] == ["sftp", "exec"], entries[:5]
    entry = sessions[1]
    assert entry["targetId"] == box.id and entry["source"] == "ssh"
    assert entry["metadata"]["kind"] == "exec" and entry["metadata"]["exitStatus"] == 2
    assert 0.5 <= entry["metadata"]["durationSeconds"] < 30
    actions = {e["action"] for e in entries}
    assert {"create_ssh_access", "revoke_ssh_access"} <= actions


def test_the_host_key_is_kept_private_and_is_the_one_served(gateway: EngineServer, box) -> None:
    dto = box.create_ssh_access()
    port, _ = target(dto.ssh_command)
    key_file = gateway.data_dir / "engine" / "ssh_host_ed25519_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    public = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, check=True
    ).stdout.split()[1]
    assert _served_key(int(port)) == public


def _served_key(port: int) -> bytes:
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"],
        capture_output=True, timeout=30, check=False,
    ).stdout.split()  # fmt: skip
    assert len(scanned) == 3, scanned
    return scanned[2]


def test_the_host_key_survives_an_engine_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A fixed port, so that the restarted gateway can be found: a free one from the OS.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_engine(
        tmp_path_factory.mktemp("ssh-restart"),
        SANDBAR_ENGINE_SSH_PORT=str(port),
        SANDBAR_ENGINE_WARM_POOL="0",
    )
    try:
        before = _served_key(port)
        server.stop()
        server.start()
        assert _served_key(port) == before
    finally:
        server.stop()


# -- boundaries -------------------------------------------------------------------------


def test_an_sftp_hard_link_is_made_inside_the_sandbox_never_on_the_host(
    box: Sandbox, tmp_path: Path
) -> None:
    # OpenSSH's `ln` (hardlink@openssh.com) reaches SFTPServer.link, whose default in
    # asyncssh links the engine's own paths as the engine's user.
    dto = box.create_ssh_access()
    _port, destination = target(dto.ssh_command)
    host_file = tmp_path / "host-only"
    host_file.write_text("the host's\n")
    box.process.exec("echo mine > /home/daytona/own")
    batch = f"-ln {host_file} {tmp_path}/linked\nln own own-linked\n"
    done = subprocess.run(
        [*ssh_argv(dto.ssh_command, *QUIET, program="sftp"), "-b", "-", destination],
        input=batch.encode(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert not (tmp_path / "linked").exists()
    assert host_file.stat().st_nlink == 1
    assert done.returncode == 0, done.stderr
    links = box.process.exec("stat -c %h /home/daytona/own-linked; cat /home/daytona/own-linked")
    assert links.result.split() == ["2", "mine"]


def test_no_token_reaches_the_engines_log(gateway: EngineServer, box: Sandbox) -> None:
    dto = box.create_ssh_access()
    assert ssh(dto.ssh_command, "true").returncode == 0
    wrong = "w" * 32
    assert ssh(dto.ssh_command.replace(dto.token, wrong), "true").returncode == 255
    log = gateway.log_path.read_text()
    assert "SSH gateway on" in log  # the log is the engine's, and it writes to it
    assert dto.token not in log
    assert wrong not in log
