"""The filtered trail as a file, streamed: CSV or JSON Lines, any size, flat memory.

Rows are read in keyset chunks (seq below the last one sent), each chunk one short
query in a worker thread, and written out before the next is read: memory holds one
chunk whatever the export's size. The export is pinned to the entries that existed
when it started, so its own audit entry, and anything written meanwhile, stay out.
"""

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db.models import QuerySet

from dashboard.audit.models import AuditEntry

CHUNK = 5000
COLUMNS = (
    "seq",
    "created_at",
    "actor_name",
    "action",
    "target_kind",
    "target_id",
    "target_name",
    "outcome",
    "error",
    "client_ip",
    "user_agent",
    "detail",
    "prev_hash",
    "hash",
)
FORMATS = {"csv": ("text/csv; charset=utf-8", "csv"), "jsonl": ("application/x-ndjson", "jsonl")}


def file_name(since: datetime | None, until: datetime | None, fmt: str, now: datetime) -> str:
    """`sandbar-audit-<from>--<to>.<ext>`, in UTC; 'start' when the range is open."""
    start = _utc(since) if since else "start"
    return f"sandbar-audit-{start}--{_utc(until or now)}.{FORMATS[fmt][1]}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _chunk(entries: QuerySet[AuditEntry], below: int) -> list[tuple]:
    return list(entries.filter(seq__lt=below).order_by("-seq").values_list(*COLUMNS)[:CHUNK])


def _csv_lines(rows: Iterable[tuple]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow((*row[:1], row[1].isoformat(), *row[2:11], json.dumps(row[11]), *row[12:]))
    return buffer.getvalue()


def _json_lines(rows: Iterable[tuple]) -> str:
    out = []
    for row in rows:
        item = dict(zip(COLUMNS, row, strict=True))
        item["created_at"] = row[1].isoformat()
        out.append(json.dumps(item, separators=(",", ":")))
    return "\n".join(out) + "\n" if out else ""


async def stream(entries: QuerySet[AuditEntry], fmt: str, top: int) -> AsyncIterator[bytes]:
    """The entries with seq ≤ `top`, newest first, as encoded chunks of the file."""
    encode: Callable[[Iterable[tuple]], str] = _csv_lines if fmt == "csv" else _json_lines
    if fmt == "csv":
        yield (",".join(COLUMNS) + "\r\n").encode()
    below = top + 1
    read = sync_to_async(_chunk)
    while True:
        rows = await read(entries, below)
        if not rows:
            return
        yield encode(rows).encode()
        below = rows[-1][0]
