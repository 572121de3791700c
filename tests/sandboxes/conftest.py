import time
import uuid

import pytest

from dashboard.accounts.access import OWNER_LABEL


@pytest.fixture
def make_sandbox(daytona_engine):
    """Create sandboxes straight through the engine's API (as the SDK would); deleted after."""
    created: list[str] = []

    def make(owner: str = "mel", name: str = "", labels: dict | None = None, **body) -> dict:
        name = name or f"t-{uuid.uuid4().hex[:10]}"
        all_labels = {**({OWNER_LABEL: owner} if owner else {}), **(labels or {})}
        with daytona_engine.client() as http:
            response = http.post("/sandbox", json={"name": name, "labels": all_labels, **body})
        assert response.status_code == 200, response.text
        created.append(response.json()["id"])
        return response.json()

    yield make
    with daytona_engine.client() as http:
        for sandbox_id in created:
            http.delete(f"/sandbox/{sandbox_id}")


def engine_call(engine, method: str, path: str, **kwargs):
    with engine.client() as http:
        return http.request(method, path, **kwargs)


def wait_for_state(engine, sandbox_id: str, *states: str, seconds: float = 15) -> dict:
    """Poll the engine until the sandbox reaches one of `states` (or is gone, for "destroyed")."""
    deadline = time.monotonic() + seconds
    while True:
        response = engine_call(engine, "GET", f"/sandbox/{sandbox_id}")
        if response.status_code == 404 and "destroyed" in states:
            return {"state": "destroyed"}
        data = response.json()
        if data.get("state") in states:
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"{sandbox_id} stayed {data.get('state')}, not {states}")
        time.sleep(0.05)


HX = {"HX-Request": "true"}
