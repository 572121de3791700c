"""The trail's rows as HTML, each drawn once and kept.

An entry never changes (its hash covers every field), so its row depends on nothing
but whether the reader may see its address, the time zone and the language. Through
the template engine a row costs about a third of a millisecond, and a page of fifty
cost more than everything else the page does; the newest page, refreshed every few
seconds by whoever watches it, would draw the same rows again and again.
"""

import contextlib
from collections import OrderedDict
from collections.abc import Sequence
from operator import attrgetter

from django.template import Context
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.safestring import SafeString

from dashboard.audit.models import AuditEntry

TEMPLATE = "audit/_row.html"
KEEP_ROWS = 2000  # 40 pages; about 1.2 KB a row
_KEPT: OrderedDict[tuple, SafeString] = OrderedDict()
# What the row draws of an entry, all in its key rather than the stored hash: an entry
# altered behind the trail's back keeps its hash, and its row must show what the chain
# check then reports. A field the template starts drawing goes here too.
_DRAWN = attrgetter(
    "seq", "created_at", "actor_name", "action", "target_kind", "target_id", "target_name",
    "outcome", "error", "client_ip",
)  # fmt: skip


def rows_html(entries: Sequence[AuditEntry], reader_id: int | None, reads_all: bool) -> list[str]:
    """Each entry's row, kept from an earlier page when drawn for the same view of it."""
    template = get_template(TEMPLATE).template
    # The source in the key: the loader reads a changed template again in development.
    place = (template.source, timezone.get_current_timezone_name(), translation.get_language())
    # One context for the page's new rows: a render of its own costs a row as much again.
    context = Context({"audit_url": reverse("audit")})
    out = []
    for entry in entries:
        shows_address = reads_all or entry.actor_id == reader_id
        key = (_DRAWN(entry), shows_address, place)
        html = _KEPT.get(key)
        if html is None:
            with context.push(entry=entry, shows_address=shows_address):
                html = _KEPT[key] = SafeString(template.render(context))
            while len(_KEPT) > KEEP_ROWS:
                with contextlib.suppress(KeyError):  # emptied meanwhile by another thread
                    _KEPT.popitem(last=False)
        else:
            with contextlib.suppress(KeyError):  # dropped meanwhile by another thread
                _KEPT.move_to_end(key)
        out.append(html)
    return out
