"""GET /api/sandbox: cursor pagination, Daytona's filters and sort."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.engine.conftest import create


@pytest.fixture(scope="module")
def group(api: httpx.Client) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Five sandboxes sharing a unique label, with different names, CPUs and states."""
    tag = uuid.uuid4().hex[:8]
    created = [
        create(
            api,
            name=f"list-{tag}-{index}",
            labels={"group": tag, "parity": str(index % 2)},
            cpu=1 + index % 2,
            public=index == 0,
            autoStopInterval=0,
        )
        for index in range(5)
    ]
    api.post(f"/sandbox/{created[4]['id']}/stop")
    yield tag, created
    for dto in created:
        api.delete(f"/sandbox/{dto['id']}")


def listing(api: httpx.Client, tag: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing filtered to the group."""
    params = {"labels": json.dumps({"group": tag}), **params}
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = api.get("/sandbox", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["nextCursor"]
        if not cursor:
            return items


def test_it_pages_with_a_cursor_without_gaps_or_repeats(api: httpx.Client, group: Any) -> None:
    tag, created = group
    first = api.get("/sandbox", params={"labels": json.dumps({"group": tag}), "limit": 2}).json()
    assert len(first["items"]) == 2
    assert first["nextCursor"]
    items = listing(api, tag, limit=2)
    assert sorted(item["id"] for item in items) == sorted(dto["id"] for dto in created)


def test_list_items_carry_the_toolbox_url_but_not_env(api: httpx.Client, group: Any) -> None:
    tag, _ = group
    item = listing(api, tag)[0]
    assert item["toolboxProxyUrl"].endswith("/toolbox")
    assert "env" not in item


def test_it_filters_by_name_prefix_state_label_cpu_and_public(
    api: httpx.Client, group: Any
) -> None:
    tag, created = group
    assert [i["name"] for i in listing(api, tag, name=f"list-{tag}-3")] == [f"list-{tag}-3"]
    assert [i["id"] for i in listing(api, tag, states="stopped")] == [created[4]["id"]]
    odd = listing(api, "", labels=json.dumps({"group": tag, "parity": "1"}))
    assert sorted(i["name"] for i in odd) == [f"list-{tag}-1", f"list-{tag}-3"]
    assert len(listing(api, tag, minCpu=2)) == 2
    assert len(listing(api, tag, maxCpu=1)) == 3
    assert [i["id"] for i in listing(api, tag, isPublic="true")] == [created[0]["id"]]
    assert listing(api, tag, id=created[2]["id"][:12])[0]["id"] == created[2]["id"]


def test_it_filters_by_creation_time(api: httpx.Client, group: Any) -> None:
    tag, created = group
    after = listing(api, tag, createdAtAfter=created[2]["createdAt"])
    assert {i["id"] for i in after} >= {created[3]["id"], created[4]["id"]}
    assert listing(api, tag, createdAtBefore="2000-01-01T00:00:00Z") == []


def test_it_sorts_by_name_in_both_orders(api: httpx.Client, group: Any) -> None:
    tag, _ = group
    ascending = [i["name"] for i in listing(api, tag, sort="name", order="asc", limit=2)]
    assert ascending == sorted(ascending)
    descending = [i["name"] for i in listing(api, tag, sort="name", order="desc")]
    assert descending == sorted(ascending, reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "many"},
        {"sort": "colour"},
        {"order": "sideways"},
        {"cursor": "not-a-cursor"},
        {"labels": "{not json"},
        {"labels": '{"a": 1}'},
        {"minCpu": "lots"},
        {"createdAtAfter": "yesterday"},
        {"isPublic": "perhaps"},
        {"unknownFilter": "x"},
    ],
)
def test_it_refuses_bad_list_parameters(api: httpx.Client, params: dict[str, Any]) -> None:
    response = api.get("/sandbox", params=params)
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
