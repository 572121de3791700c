"""Build and pull helpers (skopeo, umoci, debootstrap, cp, tar) die with the engine that
started them: a crashed engine leaves none writing into the snapshot directory the next
engine removes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.connections.servers import silent_port
from tests.engine.test_oci_images import unique, wait_for_state
from tests.engine_server import start_engine

ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN = 10.0  # seconds; the kernel kills them at once, the slack is for a busy CI


def processes_naming(text: str) -> dict[int, tuple[str, str]]:
    """pid -> (command line, start time) of this machine's processes naming ``text``."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            line = cmdline.read_bytes()
            if text.encode() in line:
                found[int(cmdline.parent.name)] = (
                    line.replace(b"\0", b" ").decode(errors="replace"),
                    _start_time(int(cmdline.parent.name)),
                )
    return found


def _start_time(pid: int) -> str:
    return _stat(pid)[19]


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # the fields after "(comm)"


def alive(pid: int, start: str) -> bool:
    """Whether that very process (not a later one given its pid) still runs."""
    try:
        fields = _stat(pid)
    except OSError:
        return False
    return fields[19] == start and fields[0] not in ("Z", "X")


def wait_until_gone(processes: dict[int, tuple[str, str]]) -> list[str]:
    """The command lines of ``processes`` still alive after GONE_WITHIN seconds."""
    deadline = time.monotonic() + GONE_WITHIN
    while time.monotonic() < deadline:
        left = [line for pid, (line, start) in processes.items() if alive(pid, start)]
        if not left:
            return []
        time.sleep(0.05)
    return left


def kill_all(processes: dict[int, tuple[str, str]]) -> None:
    for pid, (_line, start) in processes.items():
        if alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_crashed_engines_skopeo_dies_with_it_and_is_not_there_after_the_restart(
    tmp_path: Path,
) -> None:
    server = start_engine(tmp_path / "data")
    started: dict[int, tuple[str, str]] = {}
    try:
        with silent_port() as port:  # a registry that accepts and never answers
            reference = f"127.0.0.1:{port}/x/y:1.0"
            with server.client() as api:
                created = api.post(
                    "/snapshots", json={"name": unique("orphan"), "imageName": reference}
                )
                assert created.status_code == 200, created.text
                snapshot_id = created.json()["id"]
                wait_for_state(api, snapshot_id, "pulling")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                started = processes_naming(reference)
                if any(line.startswith("skopeo ") for line, _ in started.values()):
                    break
                time.sleep(0.05)
            assert any(line.startswith("skopeo ") for line, _ in started.values()), started
            server.stop(signal.SIGKILL)
            # With the registry still listening, only the engine's death can end them.
            assert wait_until_gone(started) == []
            server.start()
            assert [line for pid, (line, s) in started.items() if alive(pid, s)] == []
            assert processes_naming(reference) == {}
            with server.client() as api:
                assert api.get(f"/snapshots/{snapshot_id}").json()["state"] == "error"
    finally:
        server.stop()
        kill_all(started)


CHILD = """
import subprocess, sys, time
from dashboard.engine.helpers import tied_to_engine
tag = sys.argv[1]
# sh forks a grandchild, as debootstrap forks dpkg and wget, and tar forks gzip.
script = f"sleep 1000.{tag} & exec sleep 1001.{tag}"
subprocess.Popen(tied_to_engine(["sh", "-c", script]))
print("started", flush=True)
time.sleep(300)
"""


def test_a_helper_and_what_it_forked_die_when_the_process_that_started_it_is_killed() -> None:
    tag = str(uuid.uuid4().int)[:12]  # digits: the sleeps' durations carry it
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, tag], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    helpers: dict[int, tuple[str, str]] = {}
    sleeps: list[str] = []
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            helpers = processes_naming(tag)
            sleeps = [line for line, _ in helpers.values() if line.startswith("sleep ")]
            if len(sleeps) == 2:
                break
            time.sleep(0.05)
        assert len(sleeps) == 2, helpers
        child.kill()
        child.wait()
        assert wait_until_gone(helpers) == []
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
        kill_all(helpers)
