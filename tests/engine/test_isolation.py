"""What a sandbox cannot do: the isolation list of the issue, checked from inside and outside.

Network checks only ever target loopback or the user-mode network's own gateway
(10.0.2.2, inside the sandbox's namespace); the outward path is checked by configuration.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard.engine.image import DefaultImage
from tests.engine.conftest import create, run
from tests.engine_server import IMAGE_DIR, EngineServer

DEFAULT_IMAGE = DefaultImage(Path(IMAGE_DIR))


@pytest.fixture(scope="module")
def small(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """A sandbox with 1 GiB of memory and 1 GiB of disk, networked."""
    dto = create(api, memory=1, disk=1, autoStopInterval=0)
    yield dto
    api.delete(f"/sandbox/{dto['id']}")


@pytest.fixture(scope="module")
def offline(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """A sandbox with networkBlockAll."""
    dto = create(api, networkBlockAll=True, autoStopInterval=0)
    yield dto
    api.delete(f"/sandbox/{dto['id']}")


@pytest.fixture
def host_listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP server on the host's 127.0.0.1 that records every connection it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, address = server.accept()
            except TimeoutError:
                continue
            accepted.append(address)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def connect_from_inside(toolbox: httpx.Client, sandbox_id: str, host: str, port: int) -> str:
    code = (
        "import socket\n"
        "s = socket.socket()\n"
        "s.settimeout(3)\n"
        f"print(s.connect_ex(({host!r}, {port})))\n"
    )
    response = toolbox.post(f"/{sandbox_id}/process/code-run", json={"code": code})
    assert response.status_code == 200, response.text
    return response.json()["result"].strip()


def test_it_cannot_read_a_file_planted_on_the_host(
    toolbox: httpx.Client, small: dict[str, Any], tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("the host's secret")
    secret.chmod(0o644)
    result = run(toolbox, small["id"], f"cat {secret}; cat /etc/shadow; ls /root /work")
    assert "the host's secret" not in result["result"]
    assert "No such file or directory" in result["result"]
    passwd = run(toolbox, small["id"], "cat /etc/passwd")["result"]
    assert "daytona:x:1000" in passwd
    # The default image's own /etc, never the host's.
    assert passwd == (DEFAULT_IMAGE.rootfs / "etc" / "passwd").read_text()
    assert passwd != Path("/etc/passwd").read_text()


def test_it_cannot_see_host_processes(toolbox: httpx.Client, small: dict[str, Any]) -> None:
    result = run(toolbox, small["id"], "ls /proc | grep -c '^[0-9]*$'; cat /proc/1/comm")
    count, init = result["result"].split()
    assert int(count) < 10
    assert init == "bwrap"
    probe = run(toolbox, small["id"], f"test -e /proc/{os.getpid()}/environ && echo visible")
    assert "visible" not in probe["result"]


def test_it_cannot_write_usr_etc_or_the_root(toolbox: httpx.Client, small: dict[str, Any]) -> None:
    # The image's files belong to host root, which the sandbox's user namespace does
    # not map: the sandbox user may read them, never write them.
    for path in ("/usr/sandbar-probe", "/etc/sandbar-probe", "/sandbar-probe"):
        result = run(toolbox, small["id"], f"touch {path}")
        assert result["exitCode"] != 0
        assert "Permission denied" in result["result"]
        assert not (DEFAULT_IMAGE.rootfs / path.lstrip("/")).exists()
    assert not Path("/usr/sandbar-probe").exists()


def test_it_runs_as_an_unprivileged_host_uid(
    toolbox: httpx.Client, small: dict[str, Any], engine: EngineServer
) -> None:
    marker = f"sandbar-uid-probe-{os.getpid()}"
    run(toolbox, small["id"], f"(exec -a {marker} sleep 30) >/dev/null 2>&1 &")
    found: list[str] = []
    deadline = time.monotonic() + 5
    while not found and time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(marker.encode()):
                    found.append(pid)
            except OSError:
                continue
    assert found, "the probe process was not found on the host"
    status = Path(f"/proc/{found[0]}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    # Its own uid from the engine's range: above the shared owner, never root.
    assert len(set(uids)) == 1
    assert engine.uid_base < int(uids[0]) <= engine.uid_base + engine.uid_count
    caps = next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1]
    assert int(caps, 16) == 0
    assert run(toolbox, small["id"], "id -u")["result"] == "1000\n"


def test_a_fork_bomb_is_stopped_by_the_process_cap(
    toolbox: httpx.Client, api: httpx.Client
) -> None:
    dto = create(api, autoStopInterval=0)
    try:
        spawner = (
            "import subprocess\n"
            "children = []\n"
            "try:\n"
            "    while True:\n"
            "        children.append(subprocess.Popen(['sleep', '60']))\n"
            "except OSError as error:\n"
            "    print(len(children), error.errno)\n"
        )
        response = toolbox.post(
            f"/{dto['id']}/process/code-run", json={"code": spawner, "timeout": 60}
        )
        count, error_number = response.json()["result"].split()
        assert 100 < int(count) < 1024
        assert int(error_number) == 11  # EAGAIN from the pids cgroup
        bomb = toolbox.post(
            f"/{dto['id']}/process/execute", json={"command": ":(){ :|:& };:", "timeout": 3}
        )
        assert bomb.status_code == 408
    finally:
        api.delete(f"/sandbox/{dto['id']}")


def test_a_memory_hog_past_the_limit_is_killed(
    toolbox: httpx.Client, small: dict[str, Any]
) -> None:
    hog = (
        "chunks = []\n"
        "for _ in range(64):\n"
        "    chunks.append(bytearray(64 << 20))\n"
        "print('survived')\n"
    )
    response = toolbox.post(f"/{small['id']}/process/code-run", json={"code": hog, "timeout": 60})
    assert response.status_code == 200
    assert response.json()["exitCode"] == 137
    assert "survived" not in response.json()["result"]
    assert run(toolbox, small["id"], "echo still here")["result"] == "still here\n"


def test_a_disk_filler_fails_at_the_limit(toolbox: httpx.Client, small: dict[str, Any]) -> None:
    result = run(toolbox, small["id"], "dd if=/dev/zero of=filler bs=1M count=1400", timeout=120)
    assert result["exitCode"] != 0
    assert "No space left on device" in result["result"]
    size = run(toolbox, small["id"], "stat -c %s filler")["result"]
    assert int(size) < 1 << 30
    # The disk is full now: an upload through the API fails cleanly and leaves nothing.
    big = toolbox.post(
        f"/{small['id']}/files/bulk-upload",
        files={
            "files[0].path": (None, "more.bin"),
            "files[0].file": ("more.bin", b"x" * (8 << 20)),
        },
    )
    assert big.status_code == 413
    assert "disk is full" in big.json()["message"]
    leftover = run(toolbox, small["id"], "test -e more.bin && echo present; rm filler")
    assert "present" not in leftover["result"]


def test_with_network_block_all_only_loopback_exists(
    toolbox: httpx.Client, offline: dict[str, Any], host_listener: tuple[int, list[object]]
) -> None:
    port, accepted = host_listener
    interfaces = run(toolbox, offline["id"], "tail -n +3 /proc/net/dev | cut -d: -f1")["result"]
    assert interfaces.split() == ["lo"]
    routes = run(toolbox, offline["id"], "tail -n +2 /proc/net/route")["result"]
    assert routes.strip() == ""
    assert connect_from_inside(toolbox, offline["id"], "127.0.0.1", port) != "0"
    assert accepted == []


def _command_lines(name: str) -> list[list[bytes]]:
    """The argv of every live process called `name`.

    Other engines' helpers may exit while we look (their cmdline reads empty, or
    the /proc entry vanishes): those are skipped rather than failing the check.
    """
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != name:
                continue
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found.append([part for part in raw.split(b"\0") if part])
    return found


def test_without_it_the_sandbox_has_user_mode_networking_but_not_host_loopback(
    toolbox: httpx.Client, small: dict[str, Any], host_listener: tuple[int, list[object]]
) -> None:
    port, accepted = host_listener
    interfaces = run(toolbox, small["id"], "tail -n +3 /proc/net/dev | cut -d: -f1")["result"]
    assert sorted(interfaces.split()) == ["lo", "tap0"]
    routes = run(toolbox, small["id"], "tail -n +2 /proc/net/route")["result"].split("\n")
    default = [line.split() for line in routes if line.startswith("tap0\t00000000")]
    assert default and default[0][2] == "0202000A"  # default route via 10.0.2.2 (slirp4netns)
    slirp = [argv for argv in _command_lines("slirp4netns") if argv]
    slirp = [argv for argv in slirp if argv != [b""]]  # an exited one has no command line
    assert slirp and all(b"--disable-host-loopback" in argv for argv in slirp)
    # 10.0.2.2 is slirp's gateway inside the sandbox's own namespace: it would lead to the
    # host's loopback without --disable-host-loopback.
    assert connect_from_inside(toolbox, small["id"], "10.0.2.2", port) != "0"
    assert connect_from_inside(toolbox, small["id"], "127.0.0.1", port) != "0"
    assert accepted == []
