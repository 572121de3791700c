"""Who was forked from whom: Daytona's ``sandbox_fork`` relation, in the engine's database.

A fork is an ordinary sandbox whose disk started as a copy-on-write clone of its parent's
(:meth:`Runtime.clone`); afterwards the two share nothing but blocks neither has changed.
The relation outlives a deleted parent for as long as the engine keeps its record.
"""

from __future__ import annotations

import sqlite3

from dashboard.engine.store import SandboxRecord, iso, now

SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_forks (
    child_id TEXT PRIMARY KEY,
    parent_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sandbox_forks_parent ON sandbox_forks (parent_id);
"""
MAX_CHILDREN = 100  # as Daytona's getForkChildren
MAX_ANCESTORS = 50  # as Daytona's getForkAncestors


class Forks:
    """The parent of every fork."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.db.executescript(SCHEMA)

    def add(self, parent_id: str, child_id: str) -> None:
        """Record that ``child_id`` was forked from ``parent_id``."""
        self.db.execute(
            "INSERT INTO sandbox_forks (child_id, parent_id, created_at) VALUES (?, ?, ?)",
            (child_id, parent_id, iso(now())),
        )

    def is_fork(self, sandbox_id: str) -> bool:
        """Whether ``sandbox_id`` was made by a fork (whatever became of its parent)."""
        row = self.db.execute(
            "SELECT 1 FROM sandbox_forks WHERE child_id = ?", (sandbox_id,)
        ).fetchone()
        return row is not None

    def children(self, parent_id: str, *, include_destroyed: bool) -> list[SandboxRecord]:
        """The sandboxes forked from ``parent_id``, oldest first."""
        live = "" if include_destroyed else " AND s.state != 'destroyed'"
        rows = self.db.execute(
            "SELECT s.* FROM sandbox_forks f JOIN sandboxes s ON s.id = f.child_id"  # noqa: S608
            f" WHERE f.parent_id = ?{live} ORDER BY f.created_at, s.id LIMIT ?",
            (parent_id, MAX_CHILDREN),
        ).fetchall()
        return [SandboxRecord.from_row(row) for row in rows]

    def parent(self, child_id: str) -> SandboxRecord | None:
        """The sandbox ``child_id`` was forked from, while the engine has its record."""
        row = self.db.execute(
            "SELECT s.* FROM sandbox_forks f JOIN sandboxes s ON s.id = f.parent_id"
            " WHERE f.child_id = ?",
            (child_id,),
        ).fetchone()
        return SandboxRecord.from_row(row) if row else None

    def ancestors(self, child_id: str) -> list[SandboxRecord]:
        """The chain of parents, the first forked-from (the root) first."""
        chain: list[SandboxRecord] = []
        seen = {child_id}
        current = child_id
        while len(chain) < MAX_ANCESTORS:
            parent = self.parent(current)
            if parent is None or parent.id in seen:
                break
            seen.add(parent.id)
            chain.append(parent)
            current = parent.id
        return chain[::-1]
