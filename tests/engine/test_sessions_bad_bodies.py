"""Malformed bodies and queries to every session and PTY route: a 4xx, never a 5xx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from daytona import Sandbox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_server import EngineServer

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# Bodies shaped like the real ones, with each field's value drawn from anything JSON.
shaped = st.fixed_dictionaries(
    {},
    optional={
        key: json_values
        for key in ("sessionId", "command", "runAsync", "async", "data", "id", "cols", "rows",
                    "cwd", "envs", "lazyStart")
    },
)  # fmt: skip
bodies = st.one_of(json_values, shaped)


@pytest.fixture(scope="module")
def targets(sandbox: Sandbox, toolbox: httpx.Client) -> Iterator[dict[str, str]]:
    """A session with a running command, and a terminal, to aim at."""
    base = f"/{sandbox.id}/process"
    sessions_before = {s["sessionId"] for s in toolbox.get(f"{base}/session").json()}
    ptys_before = {p["id"] for p in toolbox.get(f"{base}/pty").json()["sessions"]}
    session_id = f"fuzz-{uuid.uuid4().hex[:6]}"
    assert toolbox.post(f"{base}/session", json={"sessionId": session_id}).status_code == 201
    exec_path = f"{base}/session/{session_id}/exec"
    reply = toolbox.post(exec_path, json={"command": "sleep 120", "runAsync": True})
    pty_id = f"fuzz-{uuid.uuid4().hex[:6]}"
    assert toolbox.post(f"{base}/pty", json={"id": pty_id}).status_code == 201
    yield {"base": base, "session": session_id, "command": reply.json()["cmdId"], "pty": pty_id}
    # Well-formed bodies drawn by hypothesis create sessions and terminals too.
    for session in toolbox.get(f"{base}/session").json():
        if session["sessionId"] not in sessions_before:
            toolbox.delete(f"{base}/session/{quote(session['sessionId'], safe='')}")
    for terminal in toolbox.get(f"{base}/pty").json()["sessions"]:
        if terminal["id"] not in ptys_before:
            toolbox.delete(f"{base}/pty/{quote(terminal['id'], safe='')}")


def _posts(t: dict[str, str]) -> list[str]:
    session = f"{t['base']}/session/{t['session']}"
    return [
        f"{t['base']}/session",
        f"{session}/exec",
        f"{session}/command/{t['command']}/input",
        f"{t['base']}/pty",
        f"{t['base']}/pty/{t['pty']}/resize",
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, index=st.integers(min_value=0, max_value=4))
def test_malformed_bodies_never_cause_a_server_error(
    toolbox: httpx.Client, targets: dict[str, str], body: Any, index: int
) -> None:
    path = _posts(targets)[index]
    if index == 1 and isinstance(body, dict) and isinstance(body.get("command"), str):
        body["runAsync"] = True  # a well-formed command must not block the test
    response = toolbox.post(path, json=body)
    assert response.status_code < 500, (path, body, response.text)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=64), index=st.integers(min_value=0, max_value=4))
def test_bodies_that_are_not_json_are_400(
    toolbox: httpx.Client, targets: dict[str, str], raw: bytes, index: int
) -> None:
    response = toolbox.post(
        _posts(targets)[index], content=b"{" + raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=st.dictionaries(st.sampled_from(["tail", "follow", "replay"]), st.text(max_size=8)))
def test_malformed_queries_never_cause_a_server_error(
    toolbox: httpx.Client, targets: dict[str, str], query: dict[str, str]
) -> None:
    session = f"{targets['base']}/session/{targets['session']}"
    response = toolbox.get(f"{session}/command/{targets['command']}/logs", params=query)
    assert response.status_code < 500, (query, response.text)


def test_the_engine_is_still_healthy_afterwards(engine: EngineServer) -> None:
    assert engine.process is not None and engine.process.poll() is None
