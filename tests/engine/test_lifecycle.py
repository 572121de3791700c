"""The state machine over raw HTTP: transitions, refusals, setters, resize and the timers."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard.engine.config import EngineConfig
from tests.engine.conftest import create, run
from tests.engine_server import EngineServer


@pytest.fixture
def fresh(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """A sandbox of this test's own, deleted afterwards."""
    dto = create(api, autoStopInterval=0)
    yield dto
    api.delete(f"/sandbox/{dto['id']}")


def backdate(engine: EngineServer, sandbox_id: str, column: str) -> None:
    """Pretend a long time has passed since the last activity or the stop."""
    with sqlite3.connect(engine.data_dir / "engine" / "engine.sqlite3") as db:
        db.execute(
            f"UPDATE sandboxes SET {column} = '2000-01-01T00:00:00.000Z' WHERE id = ?",  # noqa: S608
            (sandbox_id,),
        )


def wait_for(api: httpx.Client, sandbox_id: str, predicate: Any, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        response = api.get(f"/sandbox/{sandbox_id}")
        if predicate(response):
            return response
        assert time.monotonic() < deadline, response.text
        time.sleep(0.1)


def test_it_refuses_to_start_a_started_sandbox(api: httpx.Client, fresh: dict[str, Any]) -> None:
    response = api.post(f"/sandbox/{fresh['id']}/start")
    assert response.status_code == 400
    assert response.json()["message"] == "Sandbox is already started"
    assert response.json()["error"] == "Bad Request"
    assert api.get(f"/sandbox/{fresh['id']}").json()["state"] == "started"


def test_it_refuses_to_archive_a_running_sandbox(api: httpx.Client, fresh: dict[str, Any]) -> None:
    response = api.post(f"/sandbox/{fresh['id']}/archive")
    assert response.status_code == 400
    assert "stopped" in response.json()["message"]
    assert api.get(f"/sandbox/{fresh['id']}").json()["state"] == "started"


def test_it_refuses_to_stop_a_stopped_sandbox_and_recover_a_healthy_one(
    api: httpx.Client, fresh: dict[str, Any]
) -> None:
    assert api.post(f"/sandbox/{fresh['id']}/stop", params={"force": "true"}).status_code == 200
    assert api.post(f"/sandbox/{fresh['id']}/stop").status_code == 400
    assert api.post(f"/sandbox/{fresh['id']}/recover").status_code == 400
    assert api.get(f"/sandbox/{fresh['id']}").json()["state"] == "stopped"


def test_the_toolbox_of_a_stopped_sandbox_answers_409(
    api: httpx.Client, toolbox: httpx.Client, fresh: dict[str, Any]
) -> None:
    api.post(f"/sandbox/{fresh['id']}/stop")
    response = toolbox.post(f"/{fresh['id']}/process/execute", json={"command": "true"})
    assert response.status_code == 409
    assert "not started" in response.json()["message"]


def test_an_unknown_sandbox_is_a_404_everywhere(api: httpx.Client, toolbox: httpx.Client) -> None:
    for method, path in (
        ("GET", "/sandbox/nope"),
        ("POST", "/sandbox/nope/start"),
        ("POST", "/sandbox/nope/stop"),
        ("DELETE", "/sandbox/nope"),
        ("PUT", "/sandbox/nope/labels"),
    ):
        body = {"labels": {}} if path.endswith("labels") else None
        response = api.request(method, path, json=body)
        assert response.status_code == 404, (method, path)
        assert response.json()["statusCode"] == 404
    assert toolbox.get("/nope/files").status_code == 404


def test_a_deleted_sandbox_is_gone_and_its_name_free_again(api: httpx.Client) -> None:
    dto = create(api, name="reusable-name")
    deleted = api.delete(f"/sandbox/{dto['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["state"] == "destroyed"
    assert api.get(f"/sandbox/{dto['id']}").status_code == 404
    again = create(api, name="reusable-name")
    assert again["id"] != dto["id"]
    api.delete(f"/sandbox/{again['id']}")


def test_a_duplicate_name_is_a_409(api: httpx.Client, fresh: dict[str, Any]) -> None:
    named = create(api, name="taken-name")
    response = api.post("/sandbox", json={"name": "taken-name"})
    assert response.status_code == 409
    api.delete(f"/sandbox/{named['id']}")


def test_labels_are_replaced_as_a_whole(api: httpx.Client, fresh: dict[str, Any]) -> None:
    api.put(f"/sandbox/{fresh['id']}/labels", json={"labels": {"a": "1", "b": "2"}})
    response = api.put(f"/sandbox/{fresh['id']}/labels", json={"labels": {"c": "3"}})
    assert response.status_code == 200
    assert response.json()["labels"] == {"c": "3"}
    bad = api.put(
        f"/sandbox/{fresh['id']}/labels", json={"labels": {"code-toolbox-language": "cobol"}}
    )
    assert bad.status_code == 400
    assert api.get(f"/sandbox/{fresh['id']}").json()["labels"] == {"c": "3"}


def test_the_interval_setters_and_public_flag(api: httpx.Client, fresh: dict[str, Any]) -> None:
    sandbox = f"/sandbox/{fresh['id']}"
    assert api.post(f"{sandbox}/autostop/30").json()["autoStopInterval"] == 30
    assert api.post(f"{sandbox}/autoarchive/60").json()["autoArchiveInterval"] == 60
    assert api.post(f"{sandbox}/autodelete/-5").json()["autoDeleteInterval"] == -1
    assert api.post(f"{sandbox}/public/true").json()["public"] is True
    assert api.post(f"{sandbox}/autostop/-1").status_code == 400
    assert api.post(f"{sandbox}/autostop/soon").status_code == 400
    assert api.post(f"{sandbox}/public/maybe").status_code == 400
    assert api.get(sandbox).json()["autoStopInterval"] == 30


def test_resize_changes_limits_live_and_grows_the_disk_when_stopped(
    api: httpx.Client, toolbox: httpx.Client, fresh: dict[str, Any]
) -> None:
    sandbox = f"/sandbox/{fresh['id']}"
    live = api.post(f"{sandbox}/resize", json={"cpu": 2, "memory": 2})
    assert live.status_code == 200
    assert (live.json()["cpu"], live.json()["memory"], live.json()["state"]) == (2, 2, "started")
    assert api.post(f"{sandbox}/resize", json={"disk": 4}).status_code == 400
    api.post(f"{sandbox}/stop")
    assert api.post(f"{sandbox}/resize", json={"disk": 2}).status_code == 400
    grown = api.post(f"{sandbox}/resize", json={"disk": 4})
    assert grown.status_code == 200
    assert (grown.json()["disk"], grown.json()["state"]) == (4, "stopped")
    api.post(f"{sandbox}/start")
    size = run(toolbox, fresh["id"], "df -B1 --output=size /home/daytona | tail -1")["result"]
    assert 3.5 * 2**30 < int(size) <= 4 * 2**30


def test_auto_stop_happens_after_the_idle_interval(api: httpx.Client, engine: EngineServer) -> None:
    dto = create(api, autoStopInterval=1)
    backdate(engine, dto["id"], "last_activity_at")
    response = wait_for(api, dto["id"], lambda r: r.json()["state"] == "stopped")
    assert response.json()["state"] == "stopped"
    events = api.get(f"/sandbox/{dto['id']}/events").json()
    assert "auto-stop" in {event["kind"] for event in events}
    api.delete(f"/sandbox/{dto['id']}")


def test_toolbox_use_counts_as_activity(
    api: httpx.Client, toolbox: httpx.Client, engine: EngineServer
) -> None:
    dto = create(api, autoStopInterval=1)
    backdate(engine, dto["id"], "last_activity_at")
    run(toolbox, dto["id"], "true")
    time.sleep(1)
    response = api.get(f"/sandbox/{dto['id']}").json()
    assert response["state"] == "started"
    assert response["lastActivityAt"] > "2001"
    api.delete(f"/sandbox/{dto['id']}")


def test_auto_archive_and_auto_delete_happen(api: httpx.Client, engine: EngineServer) -> None:
    archived = create(api, autoArchiveInterval=1)
    api.post(f"/sandbox/{archived['id']}/stop")
    backdate(engine, archived["id"], "stopped_at")
    wait_for(api, archived["id"], lambda r: r.json()["state"] == "archived")
    deleted = create(api, autoDeleteInterval=5)
    api.post(f"/sandbox/{deleted['id']}/stop")
    backdate(engine, deleted["id"], "stopped_at")
    wait_for(api, deleted["id"], lambda r: r.status_code == 404)
    api.delete(f"/sandbox/{archived['id']}")


def test_auto_delete_zero_deletes_on_stop(api: httpx.Client) -> None:
    dto = create(api, autoDeleteInterval=0)
    api.post(f"/sandbox/{dto['id']}/stop")
    assert api.get(f"/sandbox/{dto['id']}").status_code == 404


def test_stop_kills_every_process_and_start_brings_a_clean_tmp(
    api: httpx.Client, toolbox: httpx.Client, fresh: dict[str, Any]
) -> None:
    run(toolbox, fresh["id"], "echo t > /tmp/t; echo h > ~/h; (sleep 300 &) ; true")
    assert run(toolbox, fresh["id"], "ps -eo comm")["result"].split().count("sleep") == 2
    api.post(f"/sandbox/{fresh['id']}/stop")
    api.post(f"/sandbox/{fresh['id']}/start")
    after = run(toolbox, fresh["id"], "ps -eo comm; cat ~/h; ls /tmp")["result"]
    assert after.split().count("sleep") == 1  # only the sandbox's own init sleeper
    assert "h\n" in after
    assert "t\n" not in after


def sandbox_init_pid(toolbox: httpx.Client, sandbox_id: str) -> int:
    """The host pid of the sandbox's pid 1, found through a marked process inside."""
    marker = f"sandbar-init-probe-{sandbox_id[:8]}"
    run(toolbox, sandbox_id, f"(exec -a {marker} sleep 60) >/dev/null 2>&1 &")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(marker.encode()):
                    continue
                namespace = os.readlink(f"/proc/{pid}/ns/pid")
            except OSError:
                continue
            for other in filter(str.isdigit, os.listdir("/proc")):
                try:
                    status = Path(f"/proc/{other}/status").read_text()
                    same = os.readlink(f"/proc/{other}/ns/pid") == namespace
                except OSError:
                    continue
                nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
                if same and nspid.split()[-1] == "1":
                    return int(other)
    raise AssertionError("the sandbox's init was not found")


def test_a_sandbox_whose_processes_die_is_an_error_that_recover_fixes(
    api: httpx.Client, toolbox: httpx.Client, fresh: dict[str, Any]
) -> None:
    run(toolbox, fresh["id"], "echo kept > ~/kept.txt")
    os.kill(sandbox_init_pid(toolbox, fresh["id"]), signal.SIGKILL)
    failed = wait_for(api, fresh["id"], lambda r: r.json()["state"] == "error").json()
    assert failed["recoverable"] is True
    assert "exited unexpectedly" in failed["errorReason"]
    assert api.post(f"/sandbox/{fresh['id']}/start").status_code == 400
    recovered = api.post(f"/sandbox/{fresh['id']}/recover")
    assert recovered.status_code == 200
    assert recovered.json()["state"] == "started"
    assert run(toolbox, fresh["id"], "cat ~/kept.txt")["result"] == "kept\n"


def test_a_long_command_keeps_the_sandbox_from_auto_stopping(
    api: httpx.Client, toolbox: httpx.Client, engine: EngineServer
) -> None:
    dto = create(api, autoStopInterval=1)
    results: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: results.append(run(toolbox, dto["id"], "sleep 2")))
    worker.start()
    time.sleep(0.3)
    backdate(engine, dto["id"], "last_activity_at")
    time.sleep(1)  # four ticks, each of which would stop an idle sandbox
    assert api.get(f"/sandbox/{dto['id']}").json()["state"] == "started"
    worker.join()
    assert results[0]["exitCode"] == 0
    assert api.get(f"/sandbox/{dto['id']}").json()["lastActivityAt"] > "2001"
    api.delete(f"/sandbox/{dto['id']}")


def test_a_default_sandbox_has_its_own_disk_until_deleted(
    api: httpx.Client, engine: EngineServer
) -> None:
    dto = create(api)  # default: normally handed out by the warm pool
    # In the engine's disk pool (runtime/disk.py), or beside its database without one.
    instance = EngineConfig(data_dir=engine.data_dir).instance_id
    image = Path("/run/sandbar") / instance / "disk-pool" / dto["id"] / "disk.img"
    if not (engine.data_dir / "engine" / "disk-pool.img").exists():
        image = engine.data_dir / "engine" / "sandboxes" / dto["id"] / "disk.img"
    assert image.exists()
    assert image.stat().st_size == dto["disk"] << 30
    api.delete(f"/sandbox/{dto['id']}")
    assert not image.exists()


def test_blocking_all_network_takes_effect_from_the_next_start(
    api: httpx.Client, toolbox: httpx.Client, fresh: dict[str, Any]
) -> None:
    sandbox = f"/sandbox/{fresh['id']}"
    interfaces = "tail -n +3 /proc/net/dev | cut -d: -f1"
    assert "tap0" in run(toolbox, fresh["id"], interfaces)["result"]
    changed = api.post(f"{sandbox}/network-settings", json={"networkBlockAll": True})
    assert changed.status_code == 200
    assert changed.json()["networkBlockAll"] is True
    api.post(f"{sandbox}/stop")
    wait_for(api, fresh["id"], lambda r: r.json()["state"] == "stopped")
    api.post(f"{sandbox}/start")
    wait_for(api, fresh["id"], lambda r: r.json()["state"] == "started")
    assert run(toolbox, fresh["id"], interfaces)["result"].split() == ["lo"]


@pytest.mark.parametrize(
    "body",
    [
        {"networkAllowList": "10.0.0.0/33"},
        {"networkBlockAll": True, "networkAllowList": "198.51.100.0/24"},
        {"domainAllowList": "example.com"},
        {"networkBlockAll": "yes"},
        {"bogus": 1},
        [1, 2],
    ],
)
def test_network_settings_refuse_what_cannot_be_honoured(
    api: httpx.Client, fresh: dict[str, Any], body: object
) -> None:
    response = api.post(f"/sandbox/{fresh['id']}/network-settings", json=body)
    assert response.status_code == 400
    assert api.get(f"/sandbox/{fresh['id']}").json()["networkBlockAll"] is False
