"""The filtered trail as a file, streamed: CSV or JSON Lines, any size, flat memory.

Rows are read in keyset chunks (seq below the last one sent), each chunk one short
query in a worker thread, and written out before the next is read: memory holds one
chunk whatever the export's size. The export is pinned to the entries that existed
when it started, so its own audit entry, and anything written meanwhile, stay out.
"""

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import msgspec
from asgiref.sync import sync_to_async
from django.db import connections
from django.db.models import CharField, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from dashboard.audit.models import AuditEntry

CHUNK = 5000
# Every field the hash covers, so a file can be checked against its chain elsewhere.
TEXT = (
    "actor_id",
    "actor_name",
    "action",
    "target_kind",
    "target_id",
    "target_name",
    "outcome",
    "error",
    "client_ip",
    "user_agent",
    "connection",
)
COLUMNS = ("seq", "created_at", *TEXT, "detail", "prev_hash", "hash")
_DETAIL = 2 + len(TEXT)
FORMATS = {"csv": ("text/csv; charset=utf-8", "csv"), "jsonl": ("application/x-ndjson", "jsonl")}


def file_name(since: datetime | None, until: datetime | None, fmt: str, now: datetime) -> str:
    """`sandbar-audit-<from>--<to>.<ext>`, in UTC; 'start' when the range is open."""
    start = _utc(since) if since else "start"
    return f"sandbar-audit-{start}--{_utc(until or now)}.{FORMATS[fmt][1]}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


# SQLite keeps a time as naive UTC text, 19 or 26 characters: written as _when writes
# it by SQLite itself (a Python call per row was a fifth of the export); any other
# form comes back NULL and that chunk goes through _when.
_SQLITE_WHEN = RawSQL(
    "CASE WHEN typeof(created_at) = 'text' AND length(created_at) IN (19, 26) "
    "THEN substr(created_at, 1, 10) || 'T' || substr(created_at, 12) || '+00:00' END",
    (),
)


# A CSV cell a spreadsheet would take for a formula (one starting with = + - @, or a tab
# or carriage return) is written with an apostrophe in front, as is one that already
# starts with an apostrophe: dropping a leading apostrophe gives every value back
# exactly. The user agent and the names in an entry are anyone's to choose. JSON Lines
# carry every value as it is.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
# actor_id is a number, which PostgreSQL's substr refuses (SQLite's takes anything).
FORMULA_COLUMNS = tuple(column for column in TEXT if column != "actor_id")


def _formula_safe(column: str, quote_name: Callable[[str], str]) -> RawSQL:
    # In SQL, so that no Python runs per value; || and substr mean the same in SQLite and
    # PostgreSQL.
    name = quote_name(column)  # one of TEXT, never from a request
    marks = ", ".join(["%s"] * len(FORMULA_STARTS))
    return RawSQL(  # noqa: S611 (the values go as parameters)
        f"CASE WHEN substr({name}, 1, 1) IN ({marks}) THEN %s || {name} ELSE {name} END",
        (*FORMULA_STARTS, "'"),
    )


def _sqlite(entries: QuerySet[AuditEntry]) -> bool:
    return connections[entries.db].vendor == "sqlite"


def _chunk(
    entries: QuerySet[AuditEntry], below: int, finished: bool = False, for_csv: bool = False
) -> list[tuple]:
    """One chunk as the database returns it: the ORM's per-value converters (a JSON
    parse and a datetime parse per row, to be turned back into text at once) cost more
    than the rest of the export together. `finished`: on SQLite, the times already as
    the file writes them (None where one was stored in another form). `for_csv`: the
    text values safe from spreadsheets' formulas."""
    when = _SQLITE_WHEN if finished else Cast("created_at", CharField())
    # The time as text: SQLite's own datetime converter would parse every one.
    columns: list = [when if c == "created_at" else c for c in COLUMNS]
    if for_csv:
        quote_name = connections[entries.db].ops.quote_name
        columns = [_formula_safe(c, quote_name) if c in FORMULA_COLUMNS else c for c in columns]
    rows = entries.filter(seq__lt=below).order_by("-seq").values_list(*columns)[:CHUNK]
    sql, params = rows.query.sql_with_params()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _when(value: datetime | str) -> str:
    # Read past the ORM, a time comes as stored: UTC, naive (SQLite's own converter) or
    # as text, depending on the connection.
    if isinstance(value, str):
        if len(value) in (19, 26):  # SQLite's text, naive UTC: the common case, cheaply
            return f"{value[:10]}T{value[11:]}+00:00"
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _json_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _csv_lines(rows: list[tuple]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(
        (row[0], _when(row[1]), *row[2:_DETAIL], _json_text(row[_DETAIL]), *row[_DETAIL + 1 :])
        for row in rows
    )
    return buffer.getvalue()


_HEAD = [json.dumps(column) for column in COLUMNS]
_JSON = msgspec.json.Encoder()


def _finished_csv(rows: list[tuple]) -> str:
    """Rows whose every value is already as the file writes it, straight to csv."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _finished_json_lines(rows: list[tuple]) -> str:
    """Rows whose every value is already as the file writes it (the detail is JSON
    text, kept as it is), one object a line, encoded by msgspec a chunk at a time."""
    raw, after = msgspec.Raw, _DETAIL + 1
    objects = [
        dict(zip(COLUMNS, (*row[:_DETAIL], raw(row[_DETAIL]), *row[after:]), strict=True))
        for row in rows
    ]
    return _JSON.encode_lines(objects).decode()


def _json_lines(rows: list[tuple]) -> str:
    out = []
    for row in rows:
        values = [str(row[0]), json.dumps(_when(row[1]))]
        values += [json.dumps(value) for value in row[2:_DETAIL]]
        values.append(_json_text(row[_DETAIL]))
        values += [json.dumps(value) for value in row[_DETAIL + 1 :]]
        out.append("{" + ",".join(f"{k}:{v}" for k, v in zip(_HEAD, values, strict=True)) + "}")
    return "\n".join(out) + "\n" if out else ""


async def stream(entries: QuerySet[AuditEntry], fmt: str, top: int) -> AsyncIterator[bytes]:
    """The entries with seq ≤ `top`, newest first, as encoded chunks of the file."""
    if fmt == "csv":
        yield (",".join(COLUMNS) + "\r\n").encode()
    below = top + 1
    read = sync_to_async(_read_encoded)
    finished = _sqlite(entries)
    while True:
        below, text = await read(entries, below, fmt, finished)
        if not below:
            return
        yield text.encode()


def _read_encoded(
    entries: QuerySet[AuditEntry], below: int, fmt: str, finished: bool
) -> tuple[int, str]:
    """The next chunk's text and the seq it ends at (0: nothing left), in one thread
    hop. On SQLite each value is read as the file writes it and no Python runs per
    value; a chunk holding a time in another form is read again the general way."""
    for_csv = fmt == "csv"
    rows = _chunk(entries, below, finished, for_csv)
    if not rows:
        return 0, ""
    if finished and all(row[1] is not None for row in rows):
        return rows[-1][0], (_finished_csv if for_csv else _finished_json_lines)(rows)
    if finished:
        rows = _chunk(entries, below, for_csv=for_csv)
    return rows[-1][0], (_csv_lines if fmt == "csv" else _json_lines)(rows)
