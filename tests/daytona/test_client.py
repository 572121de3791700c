"""The Daytona client: against the real engine, and with a fake transport only for the
failures the engine cannot produce (timeouts, 5xx, malformed replies)."""

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest

from dashboard import daytona
from dashboard.daytona import client


@pytest.fixture
def fake(settings):
    """Swap the process's HTTP client for one over a handler; the network client after."""
    settings.DAYTONA_API_URL = "http://daytona.invalid/api"
    settings.DAYTONA_API_KEY = "secret-key-123"
    seen: list[httpx.Request] = []

    def install(handler):
        def recording(request: httpx.Request) -> httpx.Response:
            # Only this test's calls: a live poll left running elsewhere may call too.
            if dict(request.url.params) != {"limit": "200"}:
                seen.append(request)
            return handler(request)

        client.use_transport(httpx.MockTransport(recording))
        return seen

    yield install
    client.use_transport(None)


SANDBOX = {
    "id": "abc",
    "name": "one",
    "state": "started",
    "labels": {"sandbar.owner": "mel"},
    "cpu": 1,
    "memory": 1,
    "disk": 3,
    "brandNewField": {"whatever": True},
}


def test_a_timeout_becomes_unavailable_and_is_not_retried(fake, settings) -> None:
    settings.DAYTONA_TIMEOUT = 3

    def slow(request):
        raise httpx.ReadTimeout("too slow", request=request)

    seen = fake(slow)
    with pytest.raises(daytona.Unavailable, match="within 3 seconds"):
        daytona_call(daytona.get_sandbox("abc"))
    assert len(seen) == 1
    assert seen[0].url == "http://daytona.invalid/api/sandbox/abc"
    assert seen[0].headers["Authorization"] == "Bearer secret-key-123"


def test_a_read_that_gets_a_502_is_retried_then_reported(fake) -> None:
    seen = fake(lambda r: httpx.Response(502, json={"message": "bad gateway"}))
    with pytest.raises(daytona.Unavailable, match="bad gateway"):
        daytona_call(daytona.list_sandboxes())
    assert len(seen) == 3
    assert all(r.method == "GET" and r.url.path == "/api/sandbox" for r in seen)


def test_a_read_that_recovers_on_retry_succeeds(fake) -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json={"items": [SANDBOX]})])
    seen = fake(lambda r: next(answers))
    page = daytona_call(daytona.list_sandboxes())
    assert [s.name for s in page.items] == ["one"]
    assert page.next_cursor is None
    assert len(seen) == 2


def test_a_change_that_gets_a_500_is_never_retried(fake) -> None:
    seen = fake(lambda r: httpx.Response(500, json={"message": "boom"}))
    with pytest.raises(daytona.Unavailable, match="boom"):
        daytona_call(daytona.stop_sandbox("abc"))
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/api/sandbox/abc/stop")]


def test_a_reply_that_is_not_json_is_unavailable(fake) -> None:
    fake(lambda r: httpx.Response(200, text="<html>proxy login</html>"))
    with pytest.raises(daytona.Unavailable, match="not JSON"):
        daytona_call(daytona.get_sandbox("abc"))


@pytest.mark.parametrize(
    "body",
    [[], {"items": "nope"}, {"items": [{"name": "no id"}]}, "text", None, 42],
    ids=["list", "items-not-a-list", "item-without-id", "string", "null", "number"],
)
def test_a_malformed_list_is_unavailable_not_a_crash(fake, body) -> None:
    seen = fake(lambda r: httpx.Response(200, content=json.dumps(body).encode()))
    with pytest.raises(daytona.Unavailable):
        daytona_call(daytona.list_sandboxes(daytona.SandboxQuery(states=("started",))))
    assert seen[0].url.params.get_list("states") == ["started"]


def test_a_list_that_is_not_json_is_unavailable(fake) -> None:
    fake(lambda r: httpx.Response(200, text="<html>proxy login</html>"))
    with pytest.raises(daytona.Unavailable, match="not JSON"):
        daytona_call(daytona.list_sandboxes())


def test_a_list_decodes_into_sandboxes_that_cannot_be_changed() -> None:
    from dashboard.daytona.models import SandboxPage

    one = {"id": "a1", "name": "web", "state": "STARTED", "labels": {"team": "x"}}
    two = {"id": "b2", "name": "api", "state": "stopped", "cpu": 2, "extra": {"new": 1}}
    body = json.dumps({"items": [one, two], "nextCursor": 7}).encode()
    page = SandboxPage.from_json(body)
    assert page.next_cursor == "7"
    first = page.items[0]
    assert (first.id, first.state, first.labels, page.items[1].cpu) == (
        "a1",
        "started",
        {"team": "x"},
        2,
    )
    # Shared between requests: neither the object nor what it holds may change.
    with pytest.raises(AttributeError):
        first.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        first.labels["team"] = "y"  # type: ignore[index]
    assert SandboxPage.from_json(body).items[0].labels == {"team": "x"}


def test_a_sandbox_read_back_from_its_own_json_is_the_same_sandbox() -> None:
    from dashboard.daytona.models import Sandbox

    sandbox = Sandbox.from_api(
        {
            "id": "a1",
            "labels": {"t": "x"},
            "createdAt": "2026-01-02T03:04:05Z",
            "volumes": [{"volumeId": "v"}],
        }
    )
    assert Sandbox.from_api(sandbox.to_api()) == sandbox


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ({"id": "a", "cpu": "two"}, "$.items[0].cpu"),
        ({"id": "a", "labels": ["x"]}, "$.items[0].labels"),
        ({"id": "a", "createdAt": "2026-01-02T03:04:05"}, "timezone"),
        ({"id": ""}, "no id"),
    ],
    ids=["words-for-a-number", "labels-not-an-object", "time-without-zone", "empty-id"],
)
def test_a_field_of_the_wrong_kind_is_unavailable_naming_it(fake, item, said) -> None:
    fake(lambda r: httpx.Response(200, json={"items": [item]}))
    with pytest.raises(daytona.Unavailable, match="malformed sandbox list") as raised:
        daytona_call(daytona.list_sandboxes())
    assert said in raised.value.message


def test_unknown_fields_are_ignored_and_missing_ones_defaulted(fake) -> None:
    body = {"id": "x1", "cpu": 1.0, "labels": None, "errorReason": None, "gpu": None, "new": 1}
    fake(lambda r: httpx.Response(200, json=body))
    sandbox = daytona_call(daytona.get_sandbox("x1"))
    assert sandbox.name == "x1"
    assert sandbox.state == "unknown"
    assert sandbox.cpu == 1
    assert sandbox.labels == {}
    assert (sandbox.error_reason, sandbox.gpu) == ("", 0)  # null: the default
    assert sandbox.created_at is None


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (400, "invalid transition", daytona.BadRequest),
        (403, "Total CPU quota exceeded", daytona.QuotaExceeded),
        (403, "missing permission write:sandboxes", daytona.Forbidden),
        (404, "Sandbox not found", daytona.NotFound),
        (409, "Sandbox state change in progress", daytona.Conflict),
        (429, "rate limit", daytona.QuotaExceeded),
        (503, "maintenance", daytona.Unavailable),
    ],
)
def test_each_status_maps_to_an_error_carrying_daytonas_message(
    fake, status, message, error
) -> None:
    fake(lambda r: httpx.Response(status, json={"statusCode": status, "message": message}))
    with pytest.raises(error) as raised:
        daytona_call(daytona.start_sandbox("abc"))
    assert message in raised.value.message


def test_the_key_never_appears_in_an_error(fake) -> None:
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    seen = fake(refuse)
    with pytest.raises(daytona.Unavailable) as raised:
        daytona_call(daytona.get_sandbox("abc"))
    assert "secret-key-123" not in str(raised.value)
    assert len(seen) == 3  # a read that never connected is safe to ask again


def test_the_list_query_sends_every_filter_as_daytona_expects(fake) -> None:
    from datetime import UTC, datetime

    seen = fake(lambda r: httpx.Response(200, json={"items": [], "nextCursor": None}))
    query = daytona.SandboxQuery(
        cursor="c1",
        limit=500,
        name="web",
        labels={"team": "a"},
        states=("started", "stopped"),
        snapshots=("snap",),
        min_cpu=1,
        max_memory_gib=4,
        is_public=False,
        created_after=datetime(2026, 1, 2, tzinfo=UTC),
        sort="name",
        order="asc",
    )
    daytona_call(daytona.list_sandboxes(query))
    params = seen[0].url.params
    assert params["limit"] == "200"
    assert params["cursor"] == "c1"
    assert params["name"] == "web"
    assert json.loads(params["labels"]) == {"team": "a"}
    assert params.get_list("states") == ["started", "stopped"]
    assert params.get_list("snapshots") == ["snap"]
    assert (params["minCpu"], params["maxMemoryGiB"], params["isPublic"]) == ("1", "4", "false")
    assert params["createdAtAfter"].startswith("2026-01-02T00:00:00")
    assert (params["sort"], params["order"]) == ("name", "asc")


def test_a_create_sends_only_what_was_given(fake) -> None:
    seen = fake(lambda r: httpx.Response(200, json=SANDBOX))
    daytona_call(
        daytona.create_sandbox(
            name="one",
            labels={"a": "b"},
            auto_delete_interval=0,
            volumes=[daytona.VolumeMount("v1", "/data")],
        )
    )
    body = json.loads(seen[0].content)
    assert body == {
        "name": "one",
        "env": {},
        "labels": {"a": "b"},
        "public": False,
        "networkBlockAll": False,
        "autoDeleteInterval": 0,
        "volumes": [{"volumeId": "v1", "mountPath": "/data"}],
    }


def daytona_call(coro):
    from asgiref.sync import async_to_sync

    async def run():
        return await coro

    return async_to_sync(run)()


# Against the real engine.


def test_it_creates_finds_filters_and_deletes_a_sandbox_on_the_engine(daytona_engine) -> None:
    name = f"client-{uuid.uuid4().hex[:8]}"
    created = daytona_call(daytona.create_sandbox(name=name, labels={"suite": name}))
    try:
        assert created.state == "started"
        assert daytona_call(daytona.get_sandbox(name)).id == created.id
        page = daytona_call(daytona.list_sandboxes(daytona.SandboxQuery(labels={"suite": name})))
        assert [s.id for s in page.items] == [created.id]
        stopped = daytona_call(
            daytona.list_sandboxes(
                daytona.SandboxQuery(labels={"suite": name}, states=("stopped",))
            )
        )
        assert not stopped.items
        labelled = daytona_call(daytona.replace_labels(created.id, {"suite": name, "x": "y"}))
        assert labelled.labels == {"suite": name, "x": "y"}
        assert daytona_call(daytona.set_auto_stop(created.id, 0)).auto_stop_interval == 0
    finally:
        deleted = daytona_call(daytona.delete_sandbox(created.id))
    assert deleted is None or deleted.state in ("destroying", "destroyed")


def test_a_missing_sandbox_is_not_found_on_the_engine(daytona_engine) -> None:
    with pytest.raises(daytona.NotFound):
        daytona_call(daytona.get_sandbox("no-such-sandbox-anywhere"))


def test_a_wrong_key_is_forbidden_on_the_engine(daytona_engine, settings) -> None:
    settings.DAYTONA_API_KEY = "wrong"
    with pytest.raises(daytona.Forbidden):
        daytona_call(daytona.list_sandboxes())


async def test_started_returns_once_the_request_is_sent_and_the_task_gives_the_answer(
    fake,
) -> None:
    answer = asyncio.Event()

    async def slow(request):
        await answer.wait()
        return httpx.Response(200, json={"items": [SANDBOX]})

    seen = fake(slow)
    task = await daytona.started(daytona.list_sandboxes(daytona.SandboxQuery(limit=1)))
    assert len(seen) == 1 and not task.done()  # on its way, not yet answered
    answer.set()
    page = await task
    assert [s.id for s in page.items] == ["abc"]


async def test_started_hands_back_a_call_that_fails_before_sending(settings) -> None:
    settings.DAYTONA_API_KEY = ""
    settings.DAYTONA_API_KEY_FILE = Path("/nonexistent/sandbar-key")
    task = await daytona.started(daytona.list_sandboxes())
    with pytest.raises(daytona.Unavailable, match="No Daytona API key"):
        await task


async def test_calls_on_the_servers_loop_share_its_one_client(daytona_engine, monkeypatch) -> None:
    # dashboard.asgi opens the shared client when the server starts. A server another
    # test runs in this process (in a thread, on its own loop) may share one already:
    # this test plays a server of its own, and the other's is put back afterwards.
    monkeypatch.setattr(client, "_shared", None)
    await client.open_shared()
    try:
        monkeypatch.setattr(client, "_new_client", lambda t: pytest.fail("a client per call"))
        page = await daytona.list_sandboxes(daytona.SandboxQuery(limit=1))
        task = await daytona.started(daytona.list_sandboxes(daytona.SandboxQuery(limit=1)))
        assert isinstance(page, daytona.SandboxPage)
        assert isinstance(await task, daytona.SandboxPage)
    finally:
        await client.close_shared()


async def test_a_call_on_another_loop_opens_and_closes_a_client_of_its_own(
    daytona_engine, monkeypatch
) -> None:
    opened: list[httpx.AsyncClient] = []
    new_client = client._new_client

    def recorded(transport):
        opened.append(new_client(transport))
        return opened[-1]

    monkeypatch.setattr(client, "_new_client", recorded)
    await daytona.list_sandboxes(daytona.SandboxQuery(limit=1))
    assert len(opened) == 1 and opened[0].is_closed


def test_the_key_file_is_read_once_and_again_when_the_setting_changes(
    fake, settings, tmp_path
) -> None:
    settings.DAYTONA_API_KEY = ""
    settings.DAYTONA_API_KEY_FILE = key_file = tmp_path / "api-key"
    seen = fake(lambda r: httpx.Response(200, json=SANDBOX))
    with pytest.raises(daytona.Unavailable, match="No Daytona API key"):
        daytona_call(daytona.get_sandbox("abc"))
    key_file.write_text("first\n")  # the engine wrote its key: looked for again
    daytona_call(daytona.get_sandbox("abc"))
    key_file.write_text("second\n")
    daytona_call(daytona.get_sandbox("abc"))
    settings.DAYTONA_API_KEY_FILE = key_file  # Django's setting_changed: read it again
    daytona_call(daytona.get_sandbox("abc"))
    assert [r.headers["Authorization"] for r in seen] == [
        "Bearer first",
        "Bearer first",
        "Bearer second",
    ]
