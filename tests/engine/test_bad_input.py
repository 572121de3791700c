"""Bad input is a 4xx JSON body with a message, never a 500, and changes nothing."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from daytona import Sandbox
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.engine.conftest import create
from tests.engine_server import EngineServer

API_ROUTES = [
    ("GET", "/api/sandbox"),
    ("POST", "/api/sandbox"),
    ("GET", "/api/sandbox/{id}"),
    ("DELETE", "/api/sandbox/{id}"),
    ("POST", "/api/sandbox/{id}/start"),
    ("POST", "/api/sandbox/{id}/stop"),
    ("POST", "/api/sandbox/{id}/archive"),
    ("POST", "/api/sandbox/{id}/recover"),
    ("PUT", "/api/sandbox/{id}/labels"),
    ("POST", "/api/sandbox/{id}/autostop/{n}"),
    ("POST", "/api/sandbox/{id}/autoarchive/{n}"),
    ("POST", "/api/sandbox/{id}/autodelete/{n}"),
    ("POST", "/api/sandbox/{id}/public/{n}"),
    ("POST", "/api/sandbox/{id}/resize"),
    ("GET", "/api/sandbox/{id}/toolbox-proxy-url"),
    ("GET", "/api/sandbox/{id}/events"),
    ("GET", "/api/health"),
    ("GET", "/api/config"),
    ("POST", "/api/sandbox/{id}/snapshot"),
    ("GET", "/api/organizations"),
    ("GET", "/api/organizations/{id}"),
    ("GET", "/api/organizations/{id}/usage"),
    ("GET", "/api/audit/organizations/{id}"),
    ("GET", "/api/volumes"),
    ("POST", "/api/volumes"),
    ("GET", "/api/volumes/{id}"),
    ("GET", "/api/volumes/by-name/{n}"),
    ("DELETE", "/api/volumes/{id}"),
    ("GET", "/api/snapshots"),
    ("POST", "/api/snapshots"),
    ("GET", "/api/snapshots/{id}"),
    ("DELETE", "/api/snapshots/{id}"),
    ("POST", "/api/snapshots/{id}/activate"),
    ("POST", "/api/snapshots/{id}/deactivate"),
    ("GET", "/api/snapshots/{id}/build-logs-url"),
    ("GET", "/api/snapshots/{id}/build-logs"),
]
TOOLBOX_ROUTES = [
    ("POST", "/toolbox/{id}/process/execute"),
    ("POST", "/toolbox/{id}/process/code-run"),
    ("GET", "/toolbox/{id}/files"),
    ("DELETE", "/toolbox/{id}/files"),
    ("GET", "/toolbox/{id}/files/info"),
    ("GET", "/toolbox/{id}/files/search"),
    ("GET", "/toolbox/{id}/files/find"),
    ("GET", "/toolbox/{id}/files/download"),
    ("POST", "/toolbox/{id}/files/bulk-download"),
    ("POST", "/toolbox/{id}/files/bulk-upload"),
    ("POST", "/toolbox/{id}/files/upload"),
    ("POST", "/toolbox/{id}/files/folder"),
    ("POST", "/toolbox/{id}/files/move"),
    ("POST", "/toolbox/{id}/files/permissions"),
    ("GET", "/toolbox/{id}/work-dir"),
]
KNOWN_KEYS = [
    "name", "snapshot", "env", "labels", "public", "networkBlockAll", "cpu", "memory", "disk",
    "gpu", "autoStopInterval", "autoArchiveInterval", "autoDeleteInterval", "volumes", "user",
    "command", "cwd", "envs", "timeout", "code", "language", "argv", "paths", "target",
    "imageName", "volumeId", "mountPath", "subpath", "entrypoint", "includeMemory",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(
    st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), json_values, max_size=5
)
raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_objects.map(lambda v: json.dumps(v).encode()),
)
segments = st.text(max_size=12).filter(lambda s: s not in (".", ".."))
QUERY_KEYS = [
    "path", "recursive", "force", "limit", "cursor", "sort", "source", "pattern",
    "page", "name", "from", "to", "nextToken", "includeDeleted", "follow", "order",
]  # fmt: skip
queries = st.dictionaries(
    st.sampled_from(QUERY_KEYS) | st.text(max_size=6),
    st.text(max_size=12),
    max_size=3,
)


@pytest.fixture(scope="module")
def target(api: httpx.Client) -> Iterator[str]:
    """A sandbox the random requests aim at (they may well stop or delete it)."""
    dto = create(api, autoStopInterval=0, name="bad-input-target")
    yield dto["id"]
    api.delete(f"/sandbox/{dto['id']}")


@pytest.fixture(scope="module")
def raw(engine: EngineServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {engine.api_key}"}
    with httpx.Client(
        base_url=f"http://127.0.0.1:{engine.port}", headers=headers, timeout=60
    ) as client:
        yield client


@pytest.fixture
def cleanup(api: httpx.Client) -> Iterator[None]:
    """Delete whatever sandboxes the random creates managed to make."""
    before = {item["id"] for item in api.get("/sandbox", params={"limit": 200}).json()["items"]}
    yield
    for item in api.get("/sandbox", params={"limit": 200}).json()["items"]:
        if item["id"] not in before:
            api.delete(f"/sandbox/{item['id']}")


def _runs_code(path: str, body: bytes) -> bool:
    """Whether the body would execute a command (we only send malformed ones)."""
    if not path.endswith(("/process/execute", "/process/code-run")):
        return False
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(value, dict) and (
        isinstance(value.get("command"), str) or isinstance(value.get("code"), str)
    )


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(API_ROUTES + TOOLBOX_ROUTES),
    use_target=st.booleans(),
    segment=segments,
    number=st.one_of(st.integers(min_value=-(2**40), max_value=2**40).map(str), segments),
    body=raw_bodies,
    query=queries,
    content_type=st.sampled_from(["application/json", "text/plain", "multipart/form-data"]),
)
def test_no_request_gets_a_server_error(
    raw: httpx.Client,
    target: str,
    cleanup: None,
    route: tuple[str, str],
    use_target: bool,
    segment: str,
    number: str,
    body: bytes,
    query: dict[str, str],
    content_type: str,
) -> None:
    method, template = route
    sandbox = target if use_target else urllib.parse.quote(segment or "x", safe="")
    path = template.format(id=sandbox, n=urllib.parse.quote(number or "0", safe=""))
    assume(not _runs_code(path, body))
    response = raw.request(
        method, path, content=body, params=query, headers={"Content-Type": content_type}
    )
    assert response.status_code < 500, (method, path, body, response.text)
    if response.status_code >= 400:
        payload = response.json()
        assert payload["statusCode"] == response.status_code
        assert payload["message"]


def test_malformed_json_is_a_400_with_a_message(api: httpx.Client) -> None:
    response = api.post(
        "/sandbox", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("Malformed JSON body")


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a string",
        {"cpu": "2"},
        {"cpu": 1.5},
        {"cpu": True},
        {"memory": -1},
        {"disk": 10**6},
        {"cpu": 10**12},
        {"gpu": 1},
        {"env": {"A": 1}},
        {"env": {"not a name": "x"}},
        {"labels": ["a"]},
        {"labels": {"code-toolbox-language": "cobol"}},
        {"name": "has space"},
        {"name": ""},
        {"snapshot": "no-such-snapshot"},
        {"volumes": [{"volumeId": "v", "mountPath": "/v"}]},
        {"networkAllowList": "10.0.0.0"},
        {"favouriteColour": "blue"},
        {"autoStopInterval": -3},
    ],
)
def test_a_bad_create_changes_nothing(api: httpx.Client, body: Any) -> None:
    before = api.get("/sandbox", params={"limit": 200}).json()["items"]
    response = api.post("/sandbox", json=body)
    assert 400 <= response.status_code < 500
    assert response.json()["message"]
    after = api.get("/sandbox", params={"limit": 200}).json()["items"]
    assert {i["id"] for i in after} == {i["id"] for i in before}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"command": ""},
        {"command": 42},
        {"command": "true", "timeout": -1},
        {"command": "true", "timeout": "soon"},
        {"command": "true", "envs": {"1BAD": "x"}},
        {"command": "true", "cwd": "/does/not/exist"},
        {"command": "true", "shell": "zsh"},
    ],
)
def test_a_bad_execute_is_a_400(
    toolbox: httpx.Client, sandbox: Sandbox, body: dict[str, Any]
) -> None:
    response = toolbox.post(f"/{sandbox.id}/process/execute", json=body)
    assert response.status_code == 400
    assert response.json()["message"]


def test_an_execute_past_its_timeout_is_a_408_and_the_tree_is_killed(
    toolbox: httpx.Client, api: httpx.Client
) -> None:
    dto = create(api, autoStopInterval=0)
    try:
        response = toolbox.post(
            f"/{dto['id']}/process/execute",
            json={"command": "sleep 300 & sleep 300 & sleep 300", "timeout": 1},
        )
        assert response.status_code == 408
        remaining = toolbox.post(f"/{dto['id']}/process/execute", json={"command": "ps -eo comm"})
        assert remaining.json()["result"].split().count("sleep") == 1  # the sandbox's own init
    finally:
        api.delete(f"/sandbox/{dto['id']}")
