import uuid

import pytest

HX = {"HX-Request": "true"}


def engine_call(engine, method: str, path: str, **kwargs):
    with engine.client() as http:
        return http.request(method, path, **kwargs)


@pytest.fixture
def make_volume(daytona_engine):
    """Create volumes straight through the engine's API; deleted after the test."""
    created: list[str] = []

    def make(name: str = "") -> dict:
        name = name or f"vol-{uuid.uuid4().hex[:8]}"
        response = engine_call(daytona_engine, "POST", "/volumes", json={"name": name})
        assert response.status_code == 200, response.text
        created.append(response.json()["id"])
        return response.json()

    yield make
    for volume_id in created:
        engine_call(daytona_engine, "DELETE", f"/volumes/{volume_id}")
