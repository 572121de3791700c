"""The audit export's hand-written SQL, run on PostgreSQL (the rest of the suite runs on
SQLite, whose functions take any type where PostgreSQL's do not)."""

import csv
import io

from tests.multiworker.conftest import OWNER, Site

MARK = "--- export ---"

EXPORT = f"""
import asyncio
from dashboard.accounts.models import User
from dashboard.audit import export
from dashboard.audit.models import AuditEntry
from dashboard.audit.trail import record

who = User.objects.get(username="{OWNER}")
for value in ("=HYPERLINK(1)", "'quoted", "plain"):
    record(who, "export.probe", target_kind="sandbox", target_name=value, user_agent=value)
entries = AuditEntry.objects.filter(action="export.probe")
top = entries.latest("seq").seq


async def file(fmt):
    return b"".join([chunk async for chunk in export.stream(entries, fmt, top)]).decode()


print({MARK!r})
print(asyncio.run(file("csv")), end="")
"""


def test_a_csv_export_on_postgresql_holds_every_entry_with_formulas_defused(
    site_settings: Site,
) -> None:
    out = site_settings.manage("shell", "-c", EXPORT)
    rows = list(csv.DictReader(io.StringIO(out.split(MARK + "\n", 1)[1])))
    written = [row["target_name"] for row in rows[:3]]
    assert written == ["plain", "''quoted", "'=HYPERLINK(1)"]
    assert [row["user_agent"] for row in rows[:3]] == written
    assert all(row["actor_id"].isdigit() for row in rows)
