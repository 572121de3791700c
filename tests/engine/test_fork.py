"""Forks: the SDK's sandbox.fork(), isolation, the fork tree, refusals, and the paginated list."""

from __future__ import annotations

import glob
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, Sandbox
from daytona.common.errors import DaytonaError

from dashboard.engine.runtime.disk import clone_file
from tests.engine.conftest import create, run
from tests.engine.test_events import connect
from tests.engine_server import EngineServer


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def parent(daytona: Daytona) -> Iterator[Sandbox]:
    sandbox = daytona.create()
    yield sandbox
    sandbox.delete()


@pytest.fixture
def cleanup(api: httpx.Client) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    for sandbox_id in reversed(ids):
        api.delete(f"/sandbox/{sandbox_id}")


def fork(api: httpx.Client, sandbox_id: str, cleanup: list[str], **body: Any) -> dict[str, Any]:
    response = api.post(f"/sandbox/{sandbox_id}/fork", json=body)
    assert response.status_code == 200, response.text
    cleanup.append(response.json()["id"])
    return response.json()


def sh(sandbox: Sandbox, command: str) -> str:
    response = sandbox.process.exec(command)
    assert response.exit_code == 0, response.result
    return response.result.strip()


def test_the_sdk_forks_a_sandbox_with_its_files_and_both_go_their_own_way(
    parent: Sandbox, cleanup: list[str]
) -> None:
    sh(parent, "echo before > ~/shared.txt && mkdir -p ~/dir && echo x > ~/dir/f")
    sh(parent, "nohup sleep 600 >/dev/null 2>&1 & echo $! > ~/sleeper.pid")
    forked = parent.fork(name=unique("fork"))
    cleanup.append(forked.id)
    assert forked.state == "started"
    assert forked.id != parent.id
    assert sh(forked, "cat ~/shared.txt ~/dir/f") == "before\nx"
    sh(forked, "echo fork > ~/shared.txt && echo only-fork > ~/fork.txt && rm ~/dir/f")
    sh(parent, "echo parent > ~/parent.txt")
    assert sh(parent, "cat ~/shared.txt ~/dir/f") == "before\nx"
    assert sh(parent, "test -e ~/fork.txt || echo absent") == "absent"
    assert sh(forked, "cat ~/shared.txt") == "fork"
    assert sh(forked, "test -e ~/parent.txt || echo absent") == "absent"
    # The parent was not restarted: the process it ran before the fork still runs.
    assert sh(parent, "kill -0 $(cat ~/sleeper.pid) && echo alive") == "alive"
    parent.refresh_data()
    assert parent.state == "started"


def test_a_fork_runs_as_its_own_user_and_owns_its_files(
    api: httpx.Client, toolbox: httpx.Client, cleanup: list[str]
) -> None:
    origin = create(api, autoStopInterval=0)
    cleanup.append(origin["id"])
    run(toolbox, origin["id"], "echo hi > ~/mine.txt")
    child = fork(api, origin["id"], cleanup)
    result = run(toolbox, child["id"], "echo more >> ~/mine.txt && stat -c %U ~/mine.txt && id -un")
    assert result["exitCode"] == 0, result
    assert result["result"].split() == ["daytona", "daytona"]


def test_a_fork_outlives_its_parent_and_keeps_its_files_across_stop_and_start(
    api: httpx.Client, toolbox: httpx.Client, cleanup: list[str]
) -> None:
    origin = create(api, autoStopInterval=0)
    run(toolbox, origin["id"], "echo inherited > ~/a.txt")
    child = fork(api, origin["id"], cleanup)
    assert api.delete(f"/sandbox/{origin['id']}").status_code == 200
    run(toolbox, child["id"], "echo own > ~/b.txt")
    assert api.post(f"/sandbox/{child['id']}/stop").status_code == 200
    assert api.post(f"/sandbox/{child['id']}/start").status_code == 200
    assert run(toolbox, child["id"], "cat ~/a.txt ~/b.txt")["result"] == "inherited\nown\n"
    # The relation is kept while the engine keeps the parent's record.
    assert api.get(f"/sandbox/{child['id']}/parent").json()["state"] == "destroyed"


def test_the_parent_goes_through_forking_and_the_fork_through_creating(
    api: httpx.Client, cleanup: list[str]
) -> None:
    origin = create(api, autoStopInterval=0)
    cleanup.append(origin["id"])
    child = fork(api, origin["id"], cleanup, name=unique("states"))
    parent_events = [e["detail"] for e in api.get(f"/sandbox/{origin['id']}/events").json()]
    assert "started -> forking" in parent_events
    assert "forking -> started" in parent_events
    child_events = [e["detail"] for e in api.get(f"/sandbox/{child['id']}/events").json()]
    assert "creating -> started" in child_events
    assert child["state"] == "started"
    # The fork keeps the parent's settings, as Daytona's does.
    for key in ("snapshot", "cpu", "memory", "disk", "autoStopInterval", "networkBlockAll"):
        assert child[key] == origin[key], key


def test_forks_parent_and_ancestors_follow_the_chain(api: httpx.Client, cleanup: list[str]) -> None:
    root = create(api, autoStopInterval=0)
    cleanup.append(root["id"])
    middle = fork(api, root["id"], cleanup)
    leaf = fork(api, middle["id"], cleanup, name=unique("leaf"))
    sibling = fork(api, root["id"], cleanup)
    ancestors = api.get(f"/sandbox/{leaf['name']}/ancestors")
    assert ancestors.status_code == 200
    assert [s["id"] for s in ancestors.json()] == [root["id"], middle["id"]]
    assert api.get(f"/sandbox/{leaf['id']}/parent").json()["id"] == middle["id"]
    children = api.get(f"/sandbox/{root['id']}/forks").json()
    assert [s["id"] for s in children] == [middle["id"], sibling["id"]]
    assert api.get(f"/sandbox/{root['id']}/ancestors").json() == []
    orphan = api.get(f"/sandbox/{root['id']}/parent")
    assert orphan.status_code == 404
    assert orphan.json()["message"] == f"Parent sandbox not found for sandbox {root['id']}"
    api.delete(f"/sandbox/{sibling['id']}")
    assert [s["id"] for s in api.get(f"/sandbox/{root['id']}/forks").json()] == [middle["id"]]
    with_destroyed = api.get(f"/sandbox/{root['id']}/forks", params={"includeDestroyed": "true"})
    assert {s["id"] for s in with_destroyed.json()} == {middle["id"], sibling["id"]}


def test_forking_a_stopped_or_missing_sandbox_is_refused(
    api: httpx.Client, daytona: Daytona, cleanup: list[str]
) -> None:
    origin = create(api, autoStopInterval=0)
    cleanup.append(origin["id"])
    assert api.post(f"/sandbox/{origin['id']}/stop").status_code == 200
    stopped = api.post(f"/sandbox/{origin['id']}/fork", json={})
    assert stopped.status_code == 400
    assert stopped.json()["message"] == "Sandbox must be in started state to fork"
    assert api.get(f"/sandbox/{origin['id']}/forks").json() == []
    missing = api.post("/sandbox/no-such-sandbox/fork", json={})
    assert missing.status_code == 404
    assert missing.json()["statusCode"] == 404
    for route in ("forks", "parent", "ancestors"):
        assert api.get(f"/sandbox/no-such-sandbox/{route}").status_code == 404
    with pytest.raises(DaytonaError):
        daytona.get(origin["id"]).fork()


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": 5}, {"name": "../x"}, {"name": "a" * 64}, {"other": 1}, [1], "x"],
)
def test_a_bad_fork_body_is_a_400(api: httpx.Client, cleanup: list[str], body: Any) -> None:
    origin = create(api, autoStopInterval=0)
    cleanup.append(origin["id"])
    response = api.post(f"/sandbox/{origin['id']}/fork", json=body)
    assert response.status_code == 400, response.text
    assert api.get(f"/sandbox/{origin['id']}").json()["state"] == "started"


def test_a_fork_name_in_use_is_a_409_and_leaves_the_parent_started(
    api: httpx.Client, cleanup: list[str]
) -> None:
    origin = create(api, autoStopInterval=0, name=unique("taken"))
    cleanup.append(origin["id"])
    response = api.post(f"/sandbox/{origin['id']}/fork", json={"name": origin["name"]})
    assert response.status_code == 409
    assert response.json()["message"] == "Sandbox with this name already exists"
    assert api.get(f"/sandbox/{origin['id']}").json()["state"] == "started"


def test_a_fork_is_audited_against_the_new_sandbox_and_a_refusal_against_the_parent(
    api: httpx.Client, cleanup: list[str]
) -> None:
    origin = create(api, autoStopInterval=0)
    cleanup.append(origin["id"])
    child = fork(api, origin["id"], cleanup, name=unique("audited"))
    refused = api.post(f"/sandbox/{origin['id']}/fork", json={"name": child["name"]})
    assert refused.status_code == 409
    organization = api.get("/organizations").json()[0]["id"]
    items = api.get(f"/audit/organizations/{organization}", params={"limit": 200}).json()["items"]
    (done,) = [i for i in items if i["targetId"] == child["id"] and i["action"] == "fork"]
    assert (done["statusCode"], done["targetType"]) == (200, "sandbox")
    (failed,) = [i for i in items if i["targetId"] == origin["id"] and i["action"] == "fork"]
    assert failed["statusCode"] == 409


def _pool_usage(sandbox_id: str) -> int | None:
    """Bytes used in the disk pool holding ``sandbox_id``'s disk (None: no pool)."""
    images = glob.glob(f"/run/sandbar/*/disk-pool/{sandbox_id}/disk.img")
    if not images:
        return None
    stats = os.statvfs(os.path.dirname(os.path.dirname(images[0])))
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def test_a_fork_of_a_full_disk_is_quick_and_shares_its_blocks(
    api: httpx.Client, toolbox: httpx.Client, cleanup: list[str]
) -> None:
    origin = create(api, autoStopInterval=0)
    cleanup.append(origin["id"])
    written = run(toolbox, origin["id"], "head -c 256M /dev/urandom > ~/big && sync && echo ok")
    assert written["result"].strip() == "ok"
    before = _pool_usage(origin["id"])
    if before is None:
        pytest.skip("this host has no disk pool (mkfs.xfs missing): forks copy in full")
    started = time.monotonic()
    child = fork(api, origin["id"], cleanup)
    elapsed = time.monotonic() - started
    after = _pool_usage(origin["id"])
    assert after is not None
    assert after - before < 64 << 20, "the fork copied the parent's blocks"
    assert elapsed < 5, elapsed  # generous for a loaded machine; ~0.1 s when idle
    same = run(toolbox, child["id"], "cmp ~/big /dev/stdin < ~/big && stat -c %s ~/big")
    assert same["result"].split()[-1] == str(256 << 20)


def test_the_paginated_list_has_daytonas_shape(api: httpx.Client, cleanup: list[str]) -> None:
    label = unique("page")
    for _ in range(3):
        cleanup.append(create(api, autoStopInterval=0, labels={"page": label})["id"])
    labels = f'{{"page": "{label}"}}'
    first = api.get("/sandbox/paginated", params={"labels": labels, "limit": 2})
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"items", "total", "page", "totalPages"}
    assert (body["total"], body["page"], body["totalPages"]) == (3, 1, 2)
    assert len(body["items"]) == 2 and "env" in body["items"][0]
    second = api.get("/sandbox/paginated", params={"labels": labels, "limit": 2, "page": 2})
    ids = [s["id"] for s in body["items"]] + [s["id"] for s in second.json()["items"]]
    assert sorted(ids) == sorted(cleanup[-3:])
    created = [s["createdAt"] for s in body["items"]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    "params",
    [{"page": "0"}, {"limit": "201"}, {"limit": "x"}, {"sort": "cpu"}, {"order": "up"},
     {"labels": "{"}, {"states": "destroyed"}, {"bogus": "1"}],
)  # fmt: skip
def test_bad_paginated_parameters_are_a_400(api: httpx.Client, params: dict[str, str]) -> None:
    response = api.get("/sandbox/paginated", params=params)
    assert response.status_code == 400, response.text


def test_a_sandbox_snapshot_goes_through_snapshotting_as_daytona_and_refuses_memory(
    api: httpx.Client, cleanup: list[str]
) -> None:
    origin = create(api, autoStopInterval=0)
    cleanup.append(origin["id"])
    body = {"name": "m", "includeMemory": True}
    memory = api.post(f"/sandbox/{origin['id']}/snapshot", json=body)
    assert memory.status_code == 400
    assert memory.json()["message"] == "includeMemory is only supported for Windows sandboxes"
    name = unique("captured")
    response = api.post(f"/sandbox/{origin['id']}/snapshot", json={"name": name})
    assert response.status_code == 200
    assert response.json()["id"] == origin["id"]
    snapshot = api.get(f"/snapshots/{name}").json()
    assert snapshot["state"] in ("snapshotting", "active")
    assert snapshot["sourceSandboxId"] == origin["id"]
    deadline = time.monotonic() + 120
    while api.get(f"/snapshots/{name}").json()["state"] == "snapshotting":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert api.get(f"/snapshots/{name}").json()["state"] == "active"
    assert api.delete(f"/snapshots/{name}").status_code == 200
    api.post(f"/sandbox/{origin['id']}/stop")
    api.post(f"/sandbox/{origin['id']}/archive")
    refused = api.post(f"/sandbox/{origin['id']}/snapshot", json={"name": unique("no")})
    assert refused.status_code == 400
    message = "Sandbox must be in started or stopped state to create a snapshot"
    assert refused.json()["message"] == message


async def test_the_event_stream_shows_the_fork_created_and_its_parent_forking(
    engine: EngineServer,
) -> None:
    stream = await connect(engine, engine.api_key)
    headers = {"Authorization": f"Bearer {engine.api_key}"}
    async with httpx.AsyncClient(base_url=engine.api_url, headers=headers, timeout=60) as api:
        parent = (await api.post("/sandbox", json={"autoStopInterval": 0})).json()
        child: dict[str, Any] = {}
        try:
            child = (await api.post(f"/sandbox/{parent['id']}/fork", json={})).json()
            _, created = await stream.wait_for(
                lambda n, d: n == "sandbox.created" and d["id"] == child["id"]
            )
            assert created["state"] == "creating"
            await stream.wait_for(
                lambda n, d: (
                    n == "sandbox.state.updated"
                    and d["sandbox"]["id"] == parent["id"]
                    and d["oldState"] == "forking"
                )
            )
            await stream.wait_for(
                lambda n, d: (
                    n == "sandbox.state.updated"
                    and d["sandbox"]["id"] == child["id"]
                    and d["newState"] == "started"
                )
            )
            assert stream.states_of(parent["id"])[-2:] == [
                ("started", "forking"),
                ("forking", "started"),
            ]
            assert stream.states_of(child["id"]) == [("creating", "started")]
        finally:
            for sandbox in (child, parent):
                if sandbox:
                    await api.delete(f"/sandbox/{sandbox['id']}")
            await stream.client.disconnect()


def test_the_sdk_snapshots_a_sandbox_and_waits_for_it(daytona: Daytona, parent: Sandbox) -> None:
    sh(parent, "echo kept > ~/kept.txt")
    name = unique("sdk-capture")
    parent.create_snapshot(name)
    assert parent.state == "started"
    snapshot = daytona.snapshot.get(name)
    assert snapshot.state == "active"
    made = daytona.create(CreateSandboxFromSnapshotParams(snapshot=name))
    try:
        assert sh(made, "cat ~/kept.txt") == "kept"
    finally:
        made.delete()
        daytona.snapshot.delete(snapshot)


def test_a_clone_without_reflinks_is_a_sparse_copy(tmp_path: Path) -> None:
    source = tmp_path / "source.img"
    with open(source, "wb") as handle:
        handle.truncate(64 << 20)
        handle.seek(32 << 20)
        handle.write(b"data in the middle")
    copy = tmp_path / "copy.img"
    shared = clone_file(source, copy)
    assert copy.read_bytes() == source.read_bytes()
    assert copy.stat().st_size == 64 << 20
    if not shared:  # ext4 and the like: only the written extent takes room
        assert copy.stat().st_blocks * 512 < 1 << 20
    with pytest.raises(FileExistsError):
        clone_file(source, copy)  # never over an existing image
