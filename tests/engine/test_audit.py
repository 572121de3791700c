"""The engine's audit log: what is recorded, and Daytona's pages, cursor and date filters."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from dashboard.engine.audit import AuditLog, classify
from tests.engine.conftest import run


@pytest.fixture(scope="module")
def organization(api: httpx.Client) -> str:
    return str(api.get("/organizations").json()[0]["id"])


def entries(api: httpx.Client, organization: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/audit/organizations/{organization}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def find(api: httpx.Client, organization: str, **match: Any) -> list[dict[str, Any]]:
    items = entries(api, organization, limit=200)["items"]
    return [i for i in items if all(i.get(k) == v for k, v in match.items())]


def test_a_create_is_recorded_with_actor_action_target_and_status(
    api: httpx.Client, organization: str
) -> None:
    sandbox = api.post("/sandbox", json={"autoStopInterval": 0}).json()
    api.delete(f"/sandbox/{sandbox['id']}")
    (created,) = find(api, organization, targetId=sandbox["id"], action="create")
    assert created["actorId"] == "sandbar"
    assert created["targetType"] == "sandbox"
    assert created["statusCode"] == 200
    assert created["errorMessage"] is None
    assert created["organizationId"] == organization
    assert created["ipAddress"] == "127.0.0.1"
    assert created["createdAt"].endswith("Z")
    (deleted,) = find(api, organization, targetId=sandbox["id"], action="delete")
    assert deleted["statusCode"] == 200


def test_a_refused_call_is_recorded_with_its_status_and_message(
    api: httpx.Client, organization: str
) -> None:
    response = api.post("/sandbox/no-such-sandbox/stop")
    assert response.status_code == 404
    (entry,) = find(api, organization, targetId="no-such-sandbox", action="stop")
    assert entry["statusCode"] == 404
    assert entry["errorMessage"] == response.json()["message"]


def test_toolbox_actions_are_recorded(
    api: httpx.Client, toolbox: httpx.Client, organization: str
) -> None:
    sandbox = api.post("/sandbox", json={"autoStopInterval": 0}).json()
    try:
        run(toolbox, sandbox["id"], "true")
        toolbox.post(f"/{sandbox['id']}/files/folder", params={"path": "made", "mode": "755"})
    finally:
        api.delete(f"/sandbox/{sandbox['id']}")
    actions = {e["action"] for e in find(api, organization, targetId=sandbox["id"])}
    assert {"create", "toolbox_execute_command", "toolbox_create_folder", "delete"} <= actions


def test_reads_are_not_recorded(api: httpx.Client, organization: str) -> None:
    before = entries(api, organization)["total"]
    api.get("/sandbox")
    api.get("/snapshots")
    api.get("/volumes")
    assert entries(api, organization)["total"] == before


def test_pages_and_the_next_token_walk_newest_first(api: httpx.Client, organization: str) -> None:
    for _ in range(3):
        api.post("/sandbox/audit-walk/archive")
    first = entries(api, organization, limit=2)
    assert len(first["items"]) == 2
    assert first["totalPages"] == -(-first["total"] // 2)
    assert first["items"][0]["createdAt"] >= first["items"][1]["createdAt"]
    by_token = entries(api, organization, limit=2, nextToken=first["nextToken"])
    by_page = entries(api, organization, limit=2, page=2)
    assert [i["id"] for i in by_token["items"]] == [i["id"] for i in by_page["items"]]
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in by_token["items"]}


def test_the_date_range_filters_entries(api: httpx.Client, organization: str) -> None:
    api.post("/sandbox/audit-dates/start")
    latest = entries(api, organization, limit=1)["items"][0]["createdAt"]
    assert entries(api, organization, **{"from": "2999-01-01T00:00:00Z"})["total"] == 0
    assert entries(api, organization, to="2000-01-01T00:00:00Z")["items"] == []
    window = entries(api, organization, **{"from": latest, "to": latest})
    assert window["total"] >= 1
    assert all(i["createdAt"] == latest for i in window["items"])


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"page": "0"},
        {"from": "yesterday"},
        {"to": "12/01/2026"},
        {"nextToken": "!!!"},
        {"actor": "me"},
    ],
)
def test_bad_parameters_are_a_400(
    api: httpx.Client, organization: str, params: dict[str, str]
) -> None:
    response = api.get(f"/audit/organizations/{organization}", params=params)
    assert response.status_code == 400
    assert response.json()["message"]


def test_another_organization_is_a_404(api: httpx.Client) -> None:
    assert api.get("/audit/organizations/someone-else").status_code == 404


def test_entries_past_the_retention_are_pruned() -> None:
    log = AuditLog(sqlite3.connect(":memory:"), "org", retention_days=30)
    log.record(actor="k", action="create", created_at="2000-01-01T00:00:00.000Z")
    log.record(actor="k", action="delete")
    log.prune()
    rows = log.db.execute("SELECT action FROM audit_logs").fetchall()
    assert rows == [("delete",)]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/api/sandbox", ("create", "sandbox", None)),
        ("POST", "/api/sandbox/s1/autostop/5", ("set_auto_stop_interval", "sandbox", "s1")),
        ("PUT", "/api/sandbox/s1/labels", ("replace_labels", "sandbox", "s1")),
        ("DELETE", "/api/volumes/v1", ("delete", "volume", "v1")),
        ("POST", "/api/snapshots/p1/activate", ("activate", "snapshot", "p1")),
        ("POST", "/toolbox/s1/process/session/a/exec", ("toolbox_session_execute_command",)),
        ("WS", "/toolbox/s1/process/pty/p/connect", ("toolbox_connect_pty_session",)),
        ("GET", "/toolbox/s1/files/download", ("toolbox_download_file",)),
    ],
)
def test_calls_map_to_daytonas_audit_vocabulary(
    method: str, path: str, expected: tuple[str | None, ...]
) -> None:
    call = classify(method, path)
    assert call is not None
    assert (call.action, call.target_type, call.target_id)[: len(expected)] == expected


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/sandbox"), ("GET", "/toolbox/s1/files"), ("GET", "/x")]
)
def test_reads_are_not_audited(method: str, path: str) -> None:
    assert classify(method, path) is None
