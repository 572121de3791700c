"""The control plane under ``/api``: sandboxes, in Daytona's paths and wire format."""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.engine.errors import BadRequest, NotFound
from dashboard.engine.lifecycle import (
    LANGUAGE_LABEL,
    MAX_INTERVAL,
    CreateRequest,
    Engine,
)
from dashboard.engine.runtime import rootfs
from dashboard.engine.store import ListQuery, SandboxRecord, iso
from dashboard.engine.validation import Body, Query, read_json, string_map

VERSION = "sandbar-engine-0.1"
SORT_COLUMNS = {
    "name": "name",
    "cpu": "cpu",
    "memoryGib": "memory",
    "diskGib": "disk",
    "lastActivityAt": "last_activity_at",
    "createdAt": "created_at",
}
CREATE_FIELDS = {
    "name", "snapshot", "user", "env", "labels", "public", "networkBlockAll",
    "networkAllowList", "domainAllowList", "outboundProxyUrl", "target", "cpu", "gpu",
    "gpuType", "memory", "disk", "autoStopInterval", "autoArchiveInterval",
    "autoDeleteInterval", "autoPauseInterval", "ttlMinutes", "queueTimeout", "volumes",
    "buildInfo", "secrets", "kvm", "spot", "linkedSandbox", "otelEndpointOverride",
    "class", "sandboxClass",
}  # fmt: skip
LIST_PARAMS = {
    "cursor", "limit", "id", "name", "labels", "includeErroredDeleted", "includeWarm",
    "states", "snapshots", "regionIds", "sandboxClasses", "minCpu", "maxCpu",
    "minMemoryGiB", "maxMemoryGiB", "minDiskGiB", "maxDiskGiB", "minGpu", "maxGpu",
    "isPublic", "isRecoverable", "createdAtAfter", "createdAtBefore", "lastEventAfter",
    "lastEventBefore", "autoDestroyAtAfter", "autoDestroyAtBefore", "sort", "order",
}  # fmt: skip


def engine_of(request: Request) -> Engine:
    """The engine serving this request."""
    engine: Engine = request.app.state.engine
    return engine


def toolbox_url(request: Request) -> str:
    """``toolboxProxyUrl``: this server's toolbox root, as the caller reached it."""
    return f"{request.url.scheme}://{request.url.netloc}/toolbox"


def sandbox_dto(record: SandboxRecord, request: Request, *, full: bool = True) -> dict[str, Any]:
    """A Sandbox (or SandboxListItem) DTO with every field the SDK requires."""
    return sandbox_payload(record, engine_of(request), toolbox_url(request), full=full)


def sandbox_payload(
    record: SandboxRecord, engine: Engine, toolbox: str, *, full: bool = True
) -> dict[str, Any]:
    """The Sandbox DTO for a client that reaches the toolbox at ``toolbox`` (also for events)."""
    dto: dict[str, Any] = {
        "id": record.id,
        "organizationId": engine.organization_id,
        "name": record.name,
        "snapshot": record.snapshot,
        "user": record.user,
        "labels": record.labels,
        "public": record.public,
        "networkBlockAll": record.network_block_all,
        "networkAllowList": record.network_allow_list or None,
        "target": record.target,
        "runnerId": "local",
        "sandboxClass": "container",
        "cpu": record.cpu,
        "gpu": record.gpu,
        "memory": record.memory,
        "disk": record.disk,
        "state": record.state,
        "desiredState": record.desired_state,
        "errorReason": record.error_reason,
        "recoverable": record.recoverable,
        "backupState": "None",
        "autoStopInterval": record.auto_stop_interval,
        "autoArchiveInterval": record.auto_archive_interval,
        "autoDeleteInterval": record.auto_delete_interval,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "lastActivityAt": record.last_activity_at,
        "daemonVersion": VERSION,
        "toolboxProxyUrl": toolbox,
    }
    if full:
        volumes = [mount.dto() for mount in engine.volumes.mounts(record.id)]
        dto.update({"env": record.env, "kvm": False, "volumes": volumes, "buildInfo": None})
    return dto


def _ok(record: SandboxRecord, request: Request) -> JSONResponse:
    return JSONResponse(sandbox_dto(record, request))


# -- create ---------------------------------------------------------------------


def parse_create(data: object, engine: Engine) -> CreateRequest:
    """Validate a create body; known Daytona fields that cannot be honoured are refused."""
    body = Body(data, CREATE_FIELDS)
    config = engine.config
    for key, what in (
        ("buildInfo", "building images"),
        ("linkedSandbox", "linked sandboxes"),
        ("domainAllowList", "domain allow lists"),
        ("outboundProxyUrl", "outbound proxies"),
        ("otelEndpointOverride", "OpenTelemetry endpoints"),
        ("ttlMinutes", "ttlMinutes (use autoDeleteInterval)"),
        ("gpuType", "GPUs"),
    ):
        if body.raw(key) not in (None, "", [], {}, 0):
            raise BadRequest(f"The embedded engine does not support {what}")
    secrets = body.raw("secrets")
    if secrets is not None and not isinstance(secrets, list | dict):
        raise BadRequest("secrets must be an array")
    if secrets:
        raise BadRequest("The embedded engine does not support secrets yet")
    for key in ("kvm", "spot"):
        if body.boolean(key):
            raise BadRequest(f"The embedded engine does not support {key}")
    if body.integer("gpu", 0, minimum=0):
        raise BadRequest("The embedded engine has no GPUs")
    body.integer("autoPauseInterval", minimum=0, maximum=MAX_INTERVAL)
    body.integer("queueTimeout", minimum=0, maximum=MAX_INTERVAL)
    user = body.string("user")
    if user not in (None, rootfs.SANDBOX_USER):
        raise BadRequest(f"user must be {rootfs.SANDBOX_USER}")
    sandbox_class = body.string("class") or body.string("sandboxClass")
    if sandbox_class not in (None, "container"):
        raise BadRequest("The embedded engine only runs the container class")
    labels = body.string_map("labels")
    block_all, allow_list = _network(body)
    auto_delete = body.integer(
        "autoDeleteInterval", -1, minimum=-MAX_INTERVAL, maximum=MAX_INTERVAL
    )
    assert auto_delete is not None
    return CreateRequest(
        name=body.string("name", max_length=63, allow_empty=False),
        snapshot=body.string("snapshot", max_length=255) or None,
        env=body.string_map("env", env=True),
        labels=labels,
        public=bool(body.boolean("public", False)),
        network_block_all=block_all,
        network_allow_list=allow_list or "",
        target=body.string("target", max_length=64) or "local",
        cpu=body.integer("cpu", minimum=1, maximum=config.max_cpu),
        memory=body.integer("memory", minimum=1, maximum=config.max_memory),
        disk=body.integer("disk", minimum=1, maximum=config.max_disk),
        auto_stop_interval=_interval(body, "autoStopInterval", 15),
        auto_archive_interval=_interval(body, "autoArchiveInterval", 7 * 24 * 60),
        auto_delete_interval=max(auto_delete, -1),
        volumes=body.raw("volumes"),
    )


def _network(body: Body) -> tuple[bool, str | None]:
    """networkBlockAll and networkAllowList, which Daytona refuses together."""
    block_all = bool(body.boolean("networkBlockAll", False))
    allow_list = body.allow_list("networkAllowList")
    if block_all and allow_list:
        raise BadRequest(
            "networkBlockAll: true cannot be combined with a non-empty networkAllowList"
        )
    return block_all, allow_list


def _interval(body: Body, key: str, default: int) -> int:
    value = body.integer(key, default, minimum=0, maximum=MAX_INTERVAL)
    assert value is not None
    return value


async def create_sandbox(request: Request) -> Response:
    """POST /sandbox: create and start; answers 200 with the DTO (the SDK needs exactly 200)."""
    engine = engine_of(request)
    data = await read_json(request)
    params = parse_create({} if data is None else data, engine)
    record = await engine.create(params)
    return _ok(record, request)


# -- read -------------------------------------------------------------------------


async def get_sandbox(request: Request) -> Response:
    """GET /sandbox/{id}: by id or name."""
    Query(request.query_params, {"verbose"})
    return _ok(engine_of(request).find(request.path_params["id"]), request)


def _encode_cursor(sort: str, descending: bool, record: SandboxRecord) -> str:
    value = getattr(record, sort)
    payload = json.dumps({"s": sort, "d": descending, "v": value, "i": record.id})
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str, descending: bool) -> tuple[Any, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if payload["s"] != sort or payload["d"] != descending:
            raise BadRequest("cursor was made for a different sort; start from the first page")
        value, last_id = payload["v"], payload["i"]
        if not isinstance(last_id, str) or not isinstance(value, str | int):
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("cursor is not valid") from None
    return value, last_id


def _date(query: Query, key: str) -> str | None:
    value = query.string(key)
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"query parameter {key} must be an ISO 8601 date") from None
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _number(query: Query, key: str) -> float | None:
    value = query.string(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"query parameter {key} must be a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise BadRequest(f"query parameter {key} must be a finite number")
    return number


async def list_sandboxes(request: Request) -> Response:
    """GET /sandbox: one page, with Daytona's filters, sort and an opaque cursor."""
    query = Query(request.query_params, LIST_PARAMS | {f"{p}[]" for p in LIST_PARAMS})
    sort_name = query.string("sort", "lastActivityAt") or "lastActivityAt"
    if sort_name not in SORT_COLUMNS:
        raise BadRequest(f"sort must be one of {', '.join(SORT_COLUMNS)}")
    order = (query.string("order", "desc") or "desc").lower()
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc")
    sort, descending = SORT_COLUMNS[sort_name], order == "desc"
    labels_raw = query.string("labels")
    labels: dict[str, str] = {}
    if labels_raw:
        try:
            parsed = json.loads(labels_raw)
        except json.JSONDecodeError:
            raise BadRequest("labels must be a JSON object of strings") from None
        labels = string_map("labels", parsed)
    cursor = query.string("cursor")
    limit = query.integer("limit", 100, minimum=1, maximum=200)
    assert limit is not None
    min_gpu, max_gpu = _number(query, "minGpu"), _number(query, "maxGpu")
    states = query.strings("states")
    list_query = ListQuery(
        limit=limit,
        after=_decode_cursor(cursor, sort, descending) if cursor else None,
        id_prefix=query.string("id"),
        name_prefix=query.string("name"),
        labels=labels,
        states=states,
        snapshots=query.strings("snapshots"),
        targets=query.strings("regionIds"),
        include_destroyed=bool(query.boolean("includeErroredDeleted", False))
        or "destroyed" in states,
        min_cpu=_number(query, "minCpu"),  # type: ignore[arg-type]
        max_cpu=_number(query, "maxCpu"),  # type: ignore[arg-type]
        min_memory=_number(query, "minMemoryGiB"),  # type: ignore[arg-type]
        max_memory=_number(query, "maxMemoryGiB"),  # type: ignore[arg-type]
        min_disk=_number(query, "minDiskGiB"),  # type: ignore[arg-type]
        max_disk=_number(query, "maxDiskGiB"),  # type: ignore[arg-type]
        is_public=query.boolean("isPublic"),
        is_recoverable=query.boolean("isRecoverable"),
        created_after=_date(query, "createdAtAfter"),
        created_before=_date(query, "createdAtBefore"),
        activity_after=_date(query, "lastEventAfter"),
        activity_before=_date(query, "lastEventBefore"),
        sort=sort,
        descending=descending,
    )
    classes = query.strings("sandboxClasses")
    query.boolean("includeWarm")
    _date(query, "autoDestroyAtAfter")
    _date(query, "autoDestroyAtBefore")
    empty = (classes and "container" not in classes) or (min_gpu is not None and min_gpu > 0)
    empty = empty or (max_gpu is not None and max_gpu < 0)
    records, more = ([], False) if empty else engine_of(request).store.list(list_query)
    items = [sandbox_dto(record, request, full=False) for record in records]
    next_cursor = _encode_cursor(sort, descending, records[-1]) if more and records else None
    return JSONResponse({"items": items, "nextCursor": next_cursor})


PAGINATED_PARAMS = {
    "page", "limit", "id", "name", "labels", "includeErroredDeleted", "states", "snapshots",
    "regions", "minCpu", "maxCpu", "minMemoryGiB", "maxMemoryGiB", "minDiskGiB", "maxDiskGiB",
    "lastEventAfter", "lastEventBefore", "sort", "order",
}  # fmt: skip
PAGINATED_SORTS = {
    "id": "id",
    "name": "name",
    "state": "state",
    "snapshot": "snapshot",
    "region": "target",
    "updatedAt": "updated_at",
    "createdAt": "created_at",
    "lastActivityAt": "last_activity_at",
}


async def list_sandboxes_paginated(request: Request) -> Response:
    """GET /sandbox/paginated: Daytona's deprecated page/limit list, for older SDKs.

    Answers ``{items, total, page, totalPages}`` with full Sandbox DTOs, newest first by
    default. The engine holds at most a few thousand records, so it counts them all.
    """
    query = Query(request.query_params, PAGINATED_PARAMS | {f"{p}[]" for p in PAGINATED_PARAMS})
    page = query.integer("page", 1, minimum=1, maximum=10**6) or 1
    limit = query.integer("limit", 100, minimum=1, maximum=200) or 100
    sort_name = query.string("sort", "createdAt") or "createdAt"
    if sort_name not in PAGINATED_SORTS:
        raise BadRequest(f"sort must be one of {', '.join(PAGINATED_SORTS)}")
    order = (query.string("order", "desc") or "desc").lower()
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc")
    labels: dict[str, str] = {}
    if labels_raw := query.string("labels"):
        try:
            labels = string_map("labels", json.loads(labels_raw))
        except json.JSONDecodeError:
            raise BadRequest("Invalid labels JSON format") from None
    states = query.strings("states")
    if "destroyed" in states:
        raise BadRequest("states must not include destroyed")
    list_query = ListQuery(
        limit=10**6,
        id_prefix=query.string("id"),
        name_prefix=query.string("name"),
        labels=labels,
        states=states,
        snapshots=query.strings("snapshots"),
        targets=query.strings("regions"),
        include_destroyed=False,
        min_cpu=_number(query, "minCpu"),  # type: ignore[arg-type]
        max_cpu=_number(query, "maxCpu"),  # type: ignore[arg-type]
        min_memory=_number(query, "minMemoryGiB"),  # type: ignore[arg-type]
        max_memory=_number(query, "maxMemoryGiB"),  # type: ignore[arg-type]
        min_disk=_number(query, "minDiskGiB"),  # type: ignore[arg-type]
        max_disk=_number(query, "maxDiskGiB"),  # type: ignore[arg-type]
        activity_after=_date(query, "lastEventAfter"),
        activity_before=_date(query, "lastEventBefore"),
        sort=PAGINATED_SORTS[sort_name],
        descending=order == "desc",
    )
    query.boolean("includeErroredDeleted")
    records, _ = engine_of(request).store.list(list_query)
    start = (page - 1) * limit
    return JSONResponse(
        {
            "items": [sandbox_dto(r, request) for r in records[start : start + limit]],
            "total": len(records),
            "page": page,
            "totalPages": math.ceil(len(records) / limit),
        }
    )


async def toolbox_proxy_url(request: Request) -> Response:
    """GET /sandbox/{id}/toolbox-proxy-url."""
    engine_of(request).find(request.path_params["id"])
    return JSONResponse({"url": toolbox_url(request)})


async def sandbox_events(request: Request) -> Response:
    """GET /sandbox/{id}/events: the engine's own history of a sandbox (not in Daytona)."""
    query = Query(request.query_params, {"limit"})
    limit = query.integer("limit", 100, minimum=1, maximum=1000)
    record = engine_of(request).find(request.path_params["id"])
    return JSONResponse(list(engine_of(request).store.events(record.id, limit or 100)))


# -- lifecycle ----------------------------------------------------------------------


def _no_body_fields(data: object) -> None:
    if data not in (None, {}):
        Body(data, ())


async def start_sandbox(request: Request) -> Response:
    """POST /sandbox/{id}/start."""
    _no_body_fields(await read_json(request))
    Query(request.query_params, set())
    return _ok(await engine_of(request).start(request.path_params["id"]), request)


async def stop_sandbox(request: Request) -> Response:
    """POST /sandbox/{id}/stop?force=."""
    _no_body_fields(await read_json(request))
    force = Query(request.query_params, {"force"}).boolean("force", False)
    record = await engine_of(request).stop(request.path_params["id"], force=bool(force))
    return _ok(record, request)


async def archive_sandbox(request: Request) -> Response:
    """POST /sandbox/{id}/archive (the sandbox must be stopped)."""
    _no_body_fields(await read_json(request))
    Query(request.query_params, set())
    return _ok(await engine_of(request).archive(request.path_params["id"]), request)


async def recover_sandbox(request: Request) -> Response:
    """POST /sandbox/{id}/recover (from a recoverable error)."""
    _no_body_fields(await read_json(request))
    Query(request.query_params, {"skipStart"})
    return _ok(await engine_of(request).recover(request.path_params["id"]), request)


async def delete_sandbox(request: Request) -> Response:
    """DELETE /sandbox/{id}: answers with the DTO in state ``destroyed``."""
    Query(request.query_params, set())
    return _ok(await engine_of(request).delete(request.path_params["id"]), request)


async def replace_labels(request: Request) -> Response:
    """PUT /sandbox/{id}/labels {labels}: replaces all labels."""
    body = Body(await read_json(request), {"labels"})
    if not body.has("labels"):
        raise BadRequest("labels is required")
    labels = body.string_map("labels")
    record = engine_of(request).set_labels(request.path_params["id"], labels)
    return _ok(record, request)


def _path_int(request: Request, key: str) -> int:
    raw = request.path_params[key]
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{key} must be an integer") from None


async def set_autostop(request: Request) -> Response:
    """POST /sandbox/{id}/autostop/{interval}: minutes idle before stopping, 0 = never."""
    interval = _path_int(request, "interval")
    if not 0 <= interval <= MAX_INTERVAL:
        raise BadRequest(f"interval must be between 0 and {MAX_INTERVAL}")
    record = engine_of(request).set_setting(request.path_params["id"], auto_stop_interval=interval)
    return _ok(record, request)


async def set_autoarchive(request: Request) -> Response:
    """POST /sandbox/{id}/autoarchive/{interval}: minutes stopped before archiving, 0 = maximum."""
    interval = _path_int(request, "interval")
    if not 0 <= interval <= MAX_INTERVAL:
        raise BadRequest(f"interval must be between 0 and {MAX_INTERVAL}")
    engine = engine_of(request)
    record = engine.set_setting(request.path_params["id"], auto_archive_interval=interval)
    return _ok(record, request)


async def set_autodelete(request: Request) -> Response:
    """POST /sandbox/{id}/autodelete/{interval}: negative = never, 0 = as soon as stopped."""
    interval = _path_int(request, "interval")
    if not -MAX_INTERVAL <= interval <= MAX_INTERVAL:
        raise BadRequest(f"interval must be between {-MAX_INTERVAL} and {MAX_INTERVAL}")
    engine = engine_of(request)
    record = engine.set_setting(request.path_params["id"], auto_delete_interval=max(interval, -1))
    return _ok(record, request)


async def set_public(request: Request) -> Response:
    """POST /sandbox/{id}/public/{isPublic}."""
    raw = request.path_params["isPublic"].lower()
    if raw not in ("true", "false"):
        raise BadRequest("isPublic must be true or false")
    record = engine_of(request).set_setting(request.path_params["id"], public=raw == "true")
    return _ok(record, request)


async def set_network_settings(request: Request) -> Response:
    """POST /sandbox/{id}/network-settings {networkBlockAll?, networkAllowList?, domainAllowList?}.

    Applied at once to a running sandbox (its firewall rules are replaced; one started
    without a network gets one). As Daytona: an allow list implies not blocking all,
    ``networkBlockAll: false`` alone restores full access and clears the allow list.
    """
    data = await read_json(request)
    body = Body(
        {} if data is None else data, {"networkBlockAll", "networkAllowList", "domainAllowList"}
    )
    if body.raw("domainAllowList") not in (None, "", [], {}):
        raise BadRequest("The embedded engine does not support domain allow lists")
    block_all = body.boolean("networkBlockAll")
    allow_list = body.allow_list("networkAllowList")
    engine = engine_of(request)
    if block_all is None and allow_list is None:
        return _ok(engine.find(request.path_params["id"]), request)
    if block_all and allow_list:
        raise BadRequest(
            "networkBlockAll: true cannot be combined with a non-empty networkAllowList"
        )
    record = await engine.set_network(
        request.path_params["id"], block_all=bool(block_all), allow_list=allow_list or ""
    )
    return _ok(record, request)


async def resize_sandbox(request: Request) -> Response:
    """POST /sandbox/{id}/resize {cpu?, memory?, disk?}."""
    engine = engine_of(request)
    config = engine.config
    data = await read_json(request)
    body = Body({} if data is None else data, {"cpu", "memory", "disk", "gpu"})
    if body.integer("gpu", 0, minimum=0):
        raise BadRequest("The embedded engine has no GPUs")
    record = await engine.resize(
        request.path_params["id"],
        cpu=body.integer("cpu", minimum=1, maximum=config.max_cpu),
        memory=body.integer("memory", minimum=1, maximum=config.max_memory),
        disk=body.integer("disk", minimum=1, maximum=config.max_disk),
    )
    return _ok(record, request)


async def snapshot_sandbox(request: Request) -> Response:
    """POST /sandbox/{id}/snapshot {name}: snapshot a sandbox's files; answers the Sandbox."""
    Query(request.query_params, set())
    body = Body(await read_json(request), {"name", "includeMemory"})
    name = body.string("name", required=True, max_length=255, allow_empty=False)
    if body.boolean("includeMemory"):
        raise BadRequest("includeMemory is only supported for Windows sandboxes")
    assert name is not None
    return _ok(await engine_of(request).snapshot(request.path_params["id"], name), request)


# -- forks ------------------------------------------------------------------------------


async def fork_sandbox(request: Request) -> Response:
    """POST /sandbox/{id}/fork {name?}: a started copy of a started sandbox's files."""
    Query(request.query_params, set())
    data = await read_json(request)
    body = Body({} if data is None else data, {"name"})
    name = body.string("name", max_length=63, allow_empty=False)
    return _ok(await engine_of(request).fork(request.path_params["id"], name), request)


async def sandbox_forks(request: Request) -> Response:
    """GET /sandbox/{id}/forks?includeDestroyed=: the sandboxes forked from this one."""
    query = Query(request.query_params, {"includeDestroyed"})
    include_destroyed = bool(query.boolean("includeDestroyed", False))
    engine = engine_of(request)
    record = engine.find(request.path_params["id"])
    children = engine.forks.children(record.id, include_destroyed=include_destroyed)
    return JSONResponse([sandbox_dto(child, request) for child in children])


async def sandbox_parent(request: Request) -> Response:
    """GET /sandbox/{id}/parent: the sandbox this one was forked from, or 404."""
    Query(request.query_params, set())
    engine = engine_of(request)
    key = request.path_params["id"]
    parent = engine.forks.parent(engine.find(key).id)
    if parent is None:
        raise NotFound(f"Parent sandbox not found for sandbox {key}")
    return _ok(parent, request)


async def sandbox_ancestors(request: Request) -> Response:
    """GET /sandbox/{id}/ancestors: the fork chain up to this sandbox, the root first."""
    Query(request.query_params, set())
    engine = engine_of(request)
    chain = engine.forks.ancestors(engine.find(request.path_params["id"]).id)
    return JSONResponse([sandbox_dto(record, request) for record in chain])


# -- misc -----------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """GET /health: the engine is up (and the key was right)."""
    return JSONResponse({"status": "ok", "version": VERSION})


async def engine_status(request: Request) -> Response:
    """GET /sandbar/engine: the host checks and the features they leave on (not Daytona's)."""
    engine = engine_of(request)
    return JSONResponse({"version": VERSION, **engine.host.as_json()})


async def config(request: Request) -> Response:
    """GET /config: the few settings a client might look at."""
    engine = engine_of(request)
    return JSONResponse(
        {
            "version": VERSION,
            "defaultSnapshot": rootfs.DEFAULT_SNAPSHOT,
            "proxyToolboxUrl": toolbox_url(request),
            "maxAutoArchiveInterval": 30 * 24 * 60,
            "defaultSandboxResources": {
                "cpu": engine.config.default_cpu,
                "memory": engine.config.default_memory,
                "disk": engine.config.default_disk,
            },
            "maxSandboxResources": {
                "cpu": engine.config.max_cpu,
                "memory": engine.config.max_memory,
                "disk": engine.config.max_disk,
            },
            "codeToolboxLanguageLabel": LANGUAGE_LABEL,
            # The rest of what the SDK's DaytonaConfiguration requires (it reads /config
            # before sandbox.get_metrics()): no sign-in, announcements or maintenance here.
            "oidc": {"issuer": "", "clientId": "", "audience": "", "provider": "none"},
            "linkedAccountsEnabled": False,
            "announcements": {},
            "proxyTemplateUrl": f"{request.url.scheme}://{{{{PORT}}}}-{{{{sandboxId}}}}.localhost"
            + (f":{request.url.port}" if request.url.port else ""),
            "dashboardUrl": "",
            "maintananceMode": False,
            "environment": "local",
        }
    )


def routes() -> list[BaseRoute]:
    """The control-plane routes, mounted at /api."""
    sandbox = "/sandbox/{id}"
    return [
        Route("/health", health, methods=["GET"]),
        Route("/config", config, methods=["GET"]),
        Route("/sandbar/engine", engine_status, methods=["GET"]),
        Route("/sandbox", list_sandboxes, methods=["GET"]),
        Route("/sandbox", create_sandbox, methods=["POST"]),
        Route("/sandbox/paginated", list_sandboxes_paginated, methods=["GET"]),
        Route(sandbox, get_sandbox, methods=["GET"]),
        Route(sandbox, delete_sandbox, methods=["DELETE"]),
        Route(f"{sandbox}/start", start_sandbox, methods=["POST"]),
        Route(f"{sandbox}/stop", stop_sandbox, methods=["POST"]),
        Route(f"{sandbox}/archive", archive_sandbox, methods=["POST"]),
        Route(f"{sandbox}/recover", recover_sandbox, methods=["POST"]),
        Route(f"{sandbox}/labels", replace_labels, methods=["PUT"]),
        Route(f"{sandbox}/autostop/{{interval}}", set_autostop, methods=["POST"]),
        Route(f"{sandbox}/autoarchive/{{interval}}", set_autoarchive, methods=["POST"]),
        Route(f"{sandbox}/autodelete/{{interval}}", set_autodelete, methods=["POST"]),
        Route(f"{sandbox}/public/{{isPublic}}", set_public, methods=["POST"]),
        Route(f"{sandbox}/network-settings", set_network_settings, methods=["POST"]),
        Route(f"{sandbox}/resize", resize_sandbox, methods=["POST"]),
        Route(f"{sandbox}/snapshot", snapshot_sandbox, methods=["POST"]),
        Route(f"{sandbox}/fork", fork_sandbox, methods=["POST"]),
        Route(f"{sandbox}/forks", sandbox_forks, methods=["GET"]),
        Route(f"{sandbox}/parent", sandbox_parent, methods=["GET"]),
        Route(f"{sandbox}/ancestors", sandbox_ancestors, methods=["GET"]),
        Route(f"{sandbox}/toolbox-proxy-url", toolbox_proxy_url, methods=["GET"]),
        Route(f"{sandbox}/events", sandbox_events, methods=["GET"]),
    ]
