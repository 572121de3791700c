"""The engine's audit log: every mutating API call and every toolbox action, as Daytona.

An ASGI middleware (inside the bearer check, so only authenticated calls) writes one
entry per call once its status is known: actor (the API key's name), action, target
type and id, status code, error message, address, user agent and time. Entries are
served at ``GET /api/audit/organizations/{organizationId}`` with Daytona's page,
limit, from/to and ``nextToken`` parameters.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.engine.config import env_int
from dashboard.engine.errors import BadRequest, NotFound
from dashboard.engine.store import iso, now
from dashboard.engine.validation import Query

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    status_code INTEGER,
    error_message TEXT,
    ip_address TEXT,
    user_agent TEXT,
    source TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_logs_created ON audit_logs (created_at, seq);
"""
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
OPTIONAL = dict.fromkeys(
    ("target_type", "target_id", "status_code", "error_message", "ip_address", "user_agent",
     "source", "metadata"),
)  # fmt: skip
PRUNE_EVERY = 10_000  # inserts between two prunes of entries past the retention
CAPTURE_LIMIT = 256 * 1024  # error and create bodies are small; never buffer a download
TARGET_TYPES = {"sandbox": "sandbox", "snapshots": "snapshot", "volumes": "volume"}
API_ACTIONS = {
    "labels": "replace_labels",
    "autostop": "set_auto_stop_interval",
    "autoarchive": "set_auto_archive_interval",
    "autodelete": "set_auto_delete_interval",
    "public": "update_public_status",
    "snapshot": "snapshot",
    "network-settings": "update_network_settings",
}
# Verbs whose action depends on the method, in Daytona's names.
API_METHOD_ACTIONS = {
    ("POST", "ssh-access"): "create_ssh_access",
    ("DELETE", "ssh-access"): "revoke_ssh_access",
}
# (method, path below /toolbox/{id}) -> action, Daytona's toolbox_* vocabulary.
TOOLBOX_ACTIONS: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), a)
    for m, p, a in (
        ("POST", r"^/process/execute$", "toolbox_execute_command"),
        ("POST", r"^/process/code-run$", "toolbox_code_run"),
        ("POST", r"^/process/session$", "toolbox_create_session"),
        ("POST", r"^/process/session/[^/]+/exec$", "toolbox_session_execute_command"),
        ("DELETE", r"^/process/session/[^/]+$", "toolbox_delete_session"),
        ("WS", r"^/process/session/[^/]+/command/[^/]+/logs$", "toolbox_follow_command_logs"),
        ("POST", r"^/process/pty$", "toolbox_create_pty_session"),
        ("POST", r"^/process/pty/[^/]+/resize$", "toolbox_resize_pty_session"),
        ("DELETE", r"^/process/pty/[^/]+$", "toolbox_delete_pty_session"),
        ("WS", r"^/process/pty/", "toolbox_connect_pty_session"),
        ("DELETE", r"^/files/?$", "toolbox_delete_file"),
        ("GET", r"^/files/download$", "toolbox_download_file"),
        ("POST", r"^/files/bulk-download$", "toolbox_bulk_download_files"),
        ("POST", r"^/files/upload$", "toolbox_upload_file"),
        ("POST", r"^/files/bulk-upload$", "toolbox_bulk_upload_files"),
        ("POST", r"^/files/folder$", "toolbox_create_folder"),
        ("POST", r"^/files/move$", "toolbox_move_file"),
        ("POST", r"^/files/permissions$", "toolbox_set_file_permissions"),
        ("POST", r"^/files/replace$", "toolbox_replace_in_files"),
    )
]


@dataclass
class Call:
    """What the middleware knows about one call before it runs."""

    action: str
    target_type: str | None
    target_id: str | None
    capture_id: bool  # a create: the target id is in the response body


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def classify(method: str, path: str) -> Call | None:
    """The audit action for a call, or None when the call is not audited (reads)."""
    if path.startswith("/toolbox/"):
        sandbox_id, _, rest = path.removeprefix("/toolbox/").partition("/")
        rest = "/" + rest
        for action_method, pattern, action in TOOLBOX_ACTIONS:
            if action_method == method and pattern.search(rest):
                return Call(action, "sandbox", sandbox_id, False)
        if method in ("GET", "HEAD"):
            return None
        return Call(f"toolbox_{_slug(method + rest)}", "sandbox", sandbox_id, False)
    if not path.startswith("/api/") or method not in MUTATING:
        return None
    parts = [p for p in path.removeprefix("/api/").split("/") if p]
    target_type = TARGET_TYPES.get(parts[0]) if parts else None
    if len(parts) == 1:
        create = method == "POST"
        return Call("create" if create else _slug(method), target_type, None, create)
    if target_type is None:
        return Call(_slug(method + "_" + "_".join(parts)), None, None, False)
    target_id = parts[1]
    if target_type == "volume" and parts[1] == "by-name" and len(parts) > 2:
        target_id = parts[2]
    if len(parts) == 2:
        return Call({"DELETE": "delete"}.get(method, _slug(method)), target_type, target_id, False)
    verb = parts[2]
    action = API_METHOD_ACTIONS.get((method, verb)) or API_ACTIONS.get(verb, _slug(verb))
    # A fork's entry names the new sandbox once made, as Daytona's (targetIdFromResult).
    return Call(action, target_type, target_id, verb == "fork")


class AuditLog:
    """The audit_logs table."""

    def __init__(
        self, db: sqlite3.Connection, organization_id: str, retention_days: int | None = None
    ) -> None:
        self.db = db
        self.db.executescript(SCHEMA)
        self.organization_id = organization_id
        if retention_days is None:
            retention_days = env_int("SANDBAR_AUDIT_RETENTION_DAYS", 90, minimum=1)
        self.retention = timedelta(days=retention_days)
        self._inserts = 0
        self.prune()

    def prune(self) -> None:
        """Forget entries older than the retention, so the log cannot grow without bound."""
        cutoff = iso(now() - self.retention)
        self.db.execute("DELETE FROM audit_logs WHERE created_at < ?", (cutoff,))

    def record(self, **entry: Any) -> None:
        """Append one entry."""
        self.db.execute(
            "INSERT INTO audit_logs (id, actor, action, target_type, target_id, status_code,"
            " error_message, ip_address, user_agent, source, metadata, created_at)"
            " VALUES (:id, :actor, :action, :target_type, :target_id, :status_code,"
            " :error_message, :ip_address, :user_agent, :source, :metadata, :created_at)",
            {**OPTIONAL, "id": str(uuid.uuid4()), "created_at": iso(now()), **entry},
        )
        self._inserts += 1
        if self._inserts % PRUNE_EVERY == 0:
            self.prune()

    def page(
        self,
        *,
        limit: int,
        page: int,
        start: str | None,
        end: str | None,
        after_seq: int | None,
    ) -> tuple[list[sqlite3.Row], int, int | None]:
        """Newest first: one page, the total in the date range, and the next cursor."""
        where, params = [], []
        if start is not None:
            where.append("created_at >= ?")
            params.append(start)
        if end is not None:
            where.append("created_at <= ?")
            params.append(end)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = self.db.execute(f"SELECT COUNT(*) FROM audit_logs{clause}", params).fetchone()[0]  # noqa: S608
        if after_seq is not None:
            clause += (" AND " if clause else " WHERE ") + "seq < ?"
            params.append(after_seq)
            offset = 0
        else:
            offset = (page - 1) * limit
        rows = self.db.execute(
            f"SELECT * FROM audit_logs{clause} ORDER BY seq DESC LIMIT ? OFFSET ?",  # noqa: S608
            [*params, limit + 1, offset],
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, int(total), (rows[-1]["seq"] if more and rows else None)

    def dto(self, row: sqlite3.Row, key_prefix: str, key_suffix: str) -> dict[str, Any]:
        """``AuditLog`` as Daytona serves it."""
        return {
            "id": row["id"],
            "actorId": row["actor"],
            "actorEmail": "",
            "actorApiKeyPrefix": key_prefix,
            "actorApiKeySuffix": key_suffix,
            "organizationId": self.organization_id,
            "action": row["action"],
            "targetType": row["target_type"],
            "targetId": row["target_id"],
            "statusCode": row["status_code"],
            "errorMessage": row["error_message"],
            "ipAddress": row["ip_address"],
            "userAgent": row["user_agent"],
            "source": row["source"],
            "metadata": json.loads(row["metadata"]) if row["metadata"] else None,
            "createdAt": row["created_at"],
        }


def _error_message(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:500].decode(errors="replace") or None
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("error")
        return str(message)[:2000] if message else None
    return None


def _created_id(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    value = payload.get("id") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


class AuditMiddleware:
    """Record audited calls after they complete (or, for WebSockets, once accepted)."""

    def __init__(self, app: ASGIApp, log: AuditLog, actor: str) -> None:
        self.app = app
        self.log = log
        self.actor = actor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = "WS" if scope["type"] == "websocket" else scope["method"]
        call = classify(method, scope["path"])
        if call is None:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = {"status": None, "body": bytearray(), "capture": False}
        written = False

        def write(status: int | None) -> None:
            nonlocal written
            if written:
                return
            written = True
            body = bytes(state["body"])
            status_code = status or 500
            target_id = call.target_id
            if call.capture_id and status_code < 400:
                target_id = _created_id(body) or target_id
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            client = scope.get("client")
            self.log.record(
                actor=self.actor,
                action=call.action,
                target_type=call.target_type,
                target_id=target_id,
                status_code=status_code,
                error_message=_error_message(body) if status_code >= 400 else None,
                ip_address=client[0] if client else None,
                user_agent=headers.get("user-agent"),
                source=headers.get("x-daytona-source"),
            )

        async def audited_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                state["status"] = message["status"]
                state["capture"] = message["status"] >= 400 or call.capture_id
            elif kind == "http.response.body" and state["capture"]:
                if len(state["body"]) < CAPTURE_LIMIT:
                    state["body"] += message.get("body", b"")[:CAPTURE_LIMIT]
            elif kind == "websocket.accept":
                write(101)
            elif kind == "websocket.close" and not written:
                state["body"] += str(message.get("reason") or "").encode()
                code = int(message.get("code", 1000))
                write(403 if code in (1008, 4401, 4403) else 404 if code == 4404 else 400)
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        finally:
            write(state["status"])


# -- route ----------------------------------------------------------------------------


def _date(query: Query, key: str) -> str | None:
    value = query.string(key)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"query parameter {key} must be an ISO 8601 date") from None
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _decode_token(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("nextToken is not valid") from None
    return value


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(seq).encode()).decode().rstrip("=")


async def list_audit_logs(request: Request) -> Response:
    """GET /audit/organizations/{organizationId}: newest first, paged, date-filtered."""
    engine = request.app.state.engine
    if request.path_params["organizationId"] != engine.organization_id:
        raise NotFound(f"Organization with ID {request.path_params['organizationId']} not found")
    query = Query(request.query_params, {"page", "limit", "from", "to", "nextToken"})
    page = query.integer("page", 1, minimum=1, maximum=10**6) or 1
    limit = query.integer("limit", 100, minimum=1, maximum=200) or 100
    token = query.string("nextToken")
    audit: AuditLog = engine.audit
    rows, total, next_seq = audit.page(
        limit=limit,
        page=page,
        start=_date(query, "from"),
        end=_date(query, "to"),
        after_seq=_decode_token(token) if token else None,
    )
    prefix, suffix = request.app.state.audit_key_hint
    body: dict[str, Any] = {
        "items": [audit.dto(row, prefix, suffix) for row in rows],
        "total": total,
        "page": page,
        "totalPages": math.ceil(total / limit),
    }
    if next_seq is not None:
        body["nextToken"] = _encode_token(next_seq)
    return JSONResponse(body)


def routes() -> list[BaseRoute]:
    """The audit route, mounted at /api."""
    return [Route("/audit/organizations/{organizationId}", list_audit_logs, methods=["GET"])]
