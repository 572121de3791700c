"""The engine's state: sandboxes, their settings and events, in its own SQLite file."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sandboxes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    user TEXT NOT NULL,
    env TEXT NOT NULL,
    labels TEXT NOT NULL,
    public INTEGER NOT NULL,
    network_block_all INTEGER NOT NULL,
    target TEXT NOT NULL,
    cpu INTEGER NOT NULL,
    gpu INTEGER NOT NULL,
    memory INTEGER NOT NULL,
    disk INTEGER NOT NULL,
    state TEXT NOT NULL,
    desired_state TEXT NOT NULL,
    error_reason TEXT,
    recoverable INTEGER NOT NULL DEFAULT 0,
    auto_stop_interval INTEGER NOT NULL,
    auto_archive_interval INTEGER NOT NULL,
    auto_delete_interval INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_activity_at TEXT NOT NULL,
    stopped_at TEXT,
    uid INTEGER NOT NULL DEFAULT 0,
    network_allow_list TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS sandboxes_live_name ON sandboxes (name)
    WHERE state != 'destroyed';
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_sandbox ON events (sandbox_id, id);
"""


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Fixed-width ISO 8601 with milliseconds and ``Z``, so strings sort like times."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def parse_iso(value: str) -> datetime:
    """Parse a timestamp written by :func:`iso` (or any ISO 8601 with a zone)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class SandboxRecord:
    """One row of the sandboxes table."""

    id: str
    name: str
    snapshot: str
    user: str
    env: dict[str, str]
    labels: dict[str, str]
    public: bool
    network_block_all: bool
    target: str
    cpu: int
    gpu: int
    memory: int
    disk: int
    state: str
    desired_state: str
    auto_stop_interval: int
    auto_archive_interval: int
    auto_delete_interval: int
    created_at: str
    updated_at: str
    last_activity_at: str
    error_reason: str | None = None
    recoverable: bool = False
    stopped_at: str | None = None
    uid: int = 0  # the host uid the sandbox runs as, its own from create to delete
    network_allow_list: str = ""  # comma-separated IPv4 CIDRs, canonical ("": none)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SandboxRecord:
        """Build a record from a database row."""
        data = dict(row)
        data["env"] = json.loads(data["env"])
        data["labels"] = json.loads(data["labels"])
        for flag in ("public", "network_block_all", "recoverable"):
            data[flag] = bool(data[flag])
        return cls(**data)

    def to_row(self) -> dict[str, Any]:
        """The record as database column values."""
        data = asdict(self)
        data.pop("extra")
        data["env"] = json.dumps(self.env, sort_keys=True)
        data["labels"] = json.dumps(self.labels, sort_keys=True)
        for flag in ("public", "network_block_all", "recoverable"):
            data[flag] = int(data[flag])
        return data


COLUMNS = [f.name for f in fields(SandboxRecord) if f.name != "extra"]


@dataclass
class ListQuery:
    """Filters, sort and page for listing sandboxes."""

    limit: int = 100
    after: tuple[Any, str] | None = None  # (sort value, id) of the previous page's last item
    id_prefix: str | None = None
    name_prefix: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    states: Sequence[str] = ()
    snapshots: Sequence[str] = ()
    targets: Sequence[str] = ()
    include_destroyed: bool = False
    min_cpu: int | None = None
    max_cpu: int | None = None
    min_memory: int | None = None
    max_memory: int | None = None
    min_disk: int | None = None
    max_disk: int | None = None
    is_public: bool | None = None
    is_recoverable: bool | None = None
    created_after: str | None = None
    created_before: str | None = None
    activity_after: str | None = None
    activity_before: str | None = None
    sort: str = "last_activity_at"
    descending: bool = True


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Store:
    """Thin synchronous access to the SQLite file; called from the event loop only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        columns = {row["name"] for row in self.db.execute("PRAGMA table_info(sandboxes)")}
        if "uid" not in columns:  # a database from before per-sandbox uids
            self.db.execute("ALTER TABLE sandboxes ADD COLUMN uid INTEGER NOT NULL DEFAULT 0")
        if "network_allow_list" not in columns:  # from before egress allow lists
            self.db.execute(
                "ALTER TABLE sandboxes ADD COLUMN network_allow_list TEXT NOT NULL DEFAULT ''"
            )

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def meta(self, key: str, default: str) -> str:
        """Return a stored setting, storing ``default`` the first time."""
        self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, default))
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"])

    # -- sandboxes -------------------------------------------------------------

    def insert(self, record: SandboxRecord) -> None:
        """Insert a new sandbox (raises sqlite3.IntegrityError on a duplicate live name)."""
        row = record.to_row()
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT INTO sandboxes ({names}) VALUES ({marks})", list(row.values()))  # noqa: S608

    def save(self, record: SandboxRecord) -> None:
        """Write every column of an existing sandbox."""
        row = record.to_row()
        sandbox_id = row.pop("id")
        assignments = ", ".join(f"{column} = ?" for column in row)
        self.db.execute(
            f"UPDATE sandboxes SET {assignments} WHERE id = ?",  # noqa: S608
            [*row.values(), sandbox_id],
        )

    def get(self, id_or_name: str) -> SandboxRecord | None:
        """A live sandbox by id, else by name."""
        row = self.db.execute(
            "SELECT * FROM sandboxes WHERE state != 'destroyed' AND (id = ? OR name = ?) "
            "ORDER BY id = ? DESC LIMIT 1",
            (id_or_name, id_or_name, id_or_name),
        ).fetchone()
        return SandboxRecord.from_row(row) if row else None

    def live(self) -> list[SandboxRecord]:
        """Every sandbox that is not destroyed."""
        rows = self.db.execute("SELECT * FROM sandboxes WHERE state != 'destroyed'").fetchall()
        return [SandboxRecord.from_row(row) for row in rows]

    def uids(self) -> set[int]:
        """The host uids held by sandboxes that are not destroyed."""
        rows = self.db.execute("SELECT uid FROM sandboxes WHERE state != 'destroyed'")
        return {row["uid"] for row in rows}

    def touch(self, sandbox_id: str, moment: str) -> None:
        """Record activity (toolbox use) for idle-based auto-stop."""
        self.db.execute(
            "UPDATE sandboxes SET last_activity_at = ? WHERE id = ? AND last_activity_at < ?",
            (moment, sandbox_id, moment),
        )

    def list(self, query: ListQuery) -> tuple[list[SandboxRecord], bool]:
        """One page of sandboxes and whether more follow."""
        where: list[str] = []
        params: list[Any] = []
        if not query.include_destroyed:
            where.append("state != 'destroyed'")
        if query.id_prefix:
            where.append("id LIKE ? ESCAPE '\\'")
            params.append(_escape_like(query.id_prefix) + "%")
        if query.name_prefix:
            where.append("name LIKE ? ESCAPE '\\'")
            params.append(_escape_like(query.name_prefix) + "%")
        for key, value in query.labels.items():
            where.append("json_extract(labels, ?) = ?")
            params += ['$."' + key.replace('"', '\\"') + '"', value]
        for column, values in (
            ("state", query.states),
            ("snapshot", query.snapshots),
            ("target", query.targets),
        ):
            if values:
                where.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params += list(values)
        for column, op, value in (
            ("cpu", ">=", query.min_cpu),
            ("cpu", "<=", query.max_cpu),
            ("memory", ">=", query.min_memory),
            ("memory", "<=", query.max_memory),
            ("disk", ">=", query.min_disk),
            ("disk", "<=", query.max_disk),
            ("created_at", ">=", query.created_after),
            ("created_at", "<=", query.created_before),
            ("last_activity_at", ">=", query.activity_after),
            ("last_activity_at", "<=", query.activity_before),
        ):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)
        if query.is_public is not None:
            where.append("public = ?")
            params.append(int(query.is_public))
        if query.is_recoverable is not None:
            where.append("recoverable = ?")
            params.append(int(query.is_recoverable))
        sort = query.sort if query.sort in COLUMNS else "last_activity_at"
        direction = "DESC" if query.descending else "ASC"
        if query.after is not None:
            where.append(f"({sort}, id) {'<' if query.descending else '>'} (?, ?)")
            params += list(query.after)
        sql = "SELECT * FROM sandboxes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {sort} {direction}, id {direction} LIMIT ?"
        params.append(query.limit + 1)
        rows = self.db.execute(sql, params).fetchall()
        records = [SandboxRecord.from_row(row) for row in rows[: query.limit]]
        return records, len(rows) > query.limit

    def purge_destroyed(self, older_than: timedelta) -> None:
        """Forget destroyed sandboxes after a while, keeping their events."""
        cutoff = iso(now() - older_than)
        self.db.execute(
            "DELETE FROM sandboxes WHERE state = 'destroyed' AND updated_at < ?", (cutoff,)
        )

    # -- events ----------------------------------------------------------------

    def add_event(self, sandbox_id: str, kind: str, detail: str = "") -> None:
        """Append an event to a sandbox's history."""
        self.db.execute(
            "INSERT INTO events (sandbox_id, at, kind, detail) VALUES (?, ?, ?, ?)",
            (sandbox_id, iso(now()), kind, detail),
        )

    def events(self, sandbox_id: str, limit: int = 100) -> Iterator[dict[str, Any]]:
        """The latest events of a sandbox, newest first."""
        rows = self.db.execute(
            "SELECT id, at, kind, detail FROM events WHERE sandbox_id = ? ORDER BY id DESC LIMIT ?",
            (sandbox_id, limit),
        )
        for row in rows:
            yield {"id": row["id"], "at": row["at"], "kind": row["kind"], "detail": row["detail"]}


def new_id() -> str:
    """A new sandbox id (a UUID, like Daytona's)."""
    return str(uuid.uuid4())
