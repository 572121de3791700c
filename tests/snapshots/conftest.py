import time
import uuid

import pytest

HX = {"HX-Request": "true"}


def engine_call(engine, method: str, path: str, **kwargs):
    with engine.client() as http:
        return http.request(method, path, **kwargs)


def wait_for_snapshot(engine, snapshot_id: str, *states: str, seconds: float = 20) -> dict:
    """Poll the engine until the snapshot reaches one of `states`."""
    deadline = time.monotonic() + seconds
    while True:
        data = engine_call(engine, "GET", f"/snapshots/{snapshot_id}").json()
        if data.get("state") in states:
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"{snapshot_id} stayed {data.get('state')}, not {states}")
        time.sleep(0.05)


@pytest.fixture
def source_dir(tmp_path):
    """A tiny root filesystem on this machine, which the engine copies as a snapshot."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text("hello from a test snapshot\n")
    return root


@pytest.fixture
def make_snapshot(daytona_engine, source_dir):
    """Build snapshots straight through the engine's API; deleted after the test."""
    created: list[str] = []

    def make(name: str = "", image_name: str = "", wait: bool = True) -> dict:
        name = name or f"snap-{uuid.uuid4().hex[:8]}"
        body = {"name": name, "imageName": image_name or f"dir:{source_dir}"}
        response = engine_call(daytona_engine, "POST", "/snapshots", json=body)
        assert response.status_code == 200, response.text
        created.append(response.json()["id"])
        if wait:
            return wait_for_snapshot(daytona_engine, created[-1], "active", "build_failed")
        return response.json()

    yield make
    for snapshot_id in created:
        engine_call(daytona_engine, "DELETE", f"/snapshots/{snapshot_id}")
