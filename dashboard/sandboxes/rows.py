"""A sandbox's list row and action buttons: rendered from templates, kept once rendered.

The list shows up to 200 rows and the live list renders one per change per watcher;
through the template engine a row takes about a millisecond, many times the Daytona
call behind the page. So a row, once rendered, is kept in Django's cache under a
digest of everything it is rendered from (the sandbox as Daytona sent it, what this
person may do, the time zone, the templates' own text): a change to any of them is
another key, never a stale row. Only the words of its two times ("3 minutes ago")
change by the second; they are filled in as each row is served.
"""

import hashlib
import re
from collections.abc import Sequence
from functools import cache as once

import msgspec
from django.core.cache import cache
from django.template.loader import get_template, render_to_string
from django.templatetags.static import static
from django.utils import timezone
from django.utils.safestring import SafeString

from dashboard.core.templatetags.sandbar import SPRITE

# Each verb's button: what it says and its icon (stop draws its own glyph).
ACTIONS = {
    "start": ("Start", "play"),
    "stop": ("Stop", ""),
    "archive": ("Archive", "archive"),
    "recover": ("Recover", "rotate-ccw"),
    "delete": ("Delete", "trash-2"),
}
ROW, ROW_ACTIONS = "sandboxes/_row.html", "sandboxes/_row_actions.html"
# Where the rendered row leaves room for the words of its times.
LATER = {"last": SafeString("<!--ago:last-->"), "created": SafeString("<!--ago:created-->")}
_LATER = re.compile("<!--ago:(last|created)-->")
KEEP_SECONDS = 15 * 60

_UNITS = ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour"))


def ago(moment, now) -> str:
    """How long ago, as people say it ("3 minutes ago"); naturaltime is slow per row."""
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 10:
        return "now"
    if seconds < 60:
        return f"{seconds} seconds ago"
    for size, unit in (*_UNITS, (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return (
                f"a{'n' if unit == 'hour' else ''} {unit} ago"
                if count == 1
                else (f"{count} {unit}s ago")
            )
    return "now"


def _buttons(row) -> list[tuple[str, str, str]]:
    return [(verb, *ACTIONS[verb]) for verb in row.verbs]


def actions(row, view: str) -> SafeString:
    """The buttons for every action the sandbox's state allows (`view`: "row" or "page")."""
    context = {"row": row, "view": view, "buttons": _buttons(row)}
    return SafeString(render_to_string(ROW_ACTIONS, context))


@once
def _templates_digest() -> bytes:
    """What rows are drawn with (the templates' text, the icons' URL): after an upgrade
    that changes either, rows kept by the old version are other keys."""
    digest = hashlib.blake2b(static(SPRITE).encode(), digest_size=16)
    for name in (ROW, ROW_ACTIONS, "_state_badge.html"):
        digest.update(get_template(name).template.source.encode())
    return digest.digest()


def _key(row, zone: str) -> str:
    data = (row.sandbox, row.can_act, row.verbs, zone)
    packed = msgspec.msgpack.encode(data, enc_hook=dict)  # labels are read-only mappings
    digest = hashlib.blake2b(packed, digest_size=16, key=_templates_digest()).hexdigest()
    return f"sandbar:row:{digest}"


def _render(row) -> tuple[str, ...]:
    """The rendered row, cut where its times' words go: (html, "last", html, ...)."""
    context = {"row": row, "ago": LATER, "buttons": _buttons(row)}
    return tuple(_LATER.split(render_to_string(ROW, context)))


def _serve(pieces: tuple[str, ...], row, now, out: list[str]) -> None:
    moments = {"last": row.sandbox.last_event_at, "created": row.sandbox.created_at}
    out.append(pieces[0])
    for index in range(1, len(pieces), 2):
        out.append(ago(moments[pieces[index]], now))
        out.append(pieces[index + 1])


def _rendered(keys: list[str], rows: Sequence) -> list[tuple[str, ...]]:
    """Each row as kept in the cache (fetched at once), or rendered now and kept."""
    kept = cache.get_many(keys)
    fresh = {key: _render(row) for key, row in zip(keys, rows, strict=True) if key not in kept}
    if fresh:
        cache.set_many(fresh, KEEP_SECONDS)
    return [kept.get(key) or fresh[key] for key in keys]


def sandbox_rows(rows: Sequence, now=None) -> SafeString:
    """Every row of the list as one string.

    Loading the list again mostly shows the same rows: the whole block is kept too,
    under a digest of its rows' keys, so a page costs one cache read, not one per row.
    """
    if not rows:
        return SafeString("")
    now = now or timezone.now()
    zone = timezone.get_current_timezone_name()
    keys = [_key(row, zone) for row in rows]
    if len(keys) == 1:
        block = _rendered(keys, rows)
    else:
        block_key = (
            "sandbar:rows:" + hashlib.blake2b("".join(keys).encode(), digest_size=16).hexdigest()
        )
        block = cache.get(block_key)
        if block is None:
            block = _rendered(keys, rows)
            cache.set(block_key, block, KEEP_SECONDS)
    html: list[str] = []
    for pieces, row in zip(block, rows, strict=True):
        _serve(pieces, row, now, html)
    # Safe: rendered by the template engine, which escaped what Daytona sent.
    return SafeString("".join(html))


def sandbox_row(row, now=None) -> SafeString:
    """The list's row for one sandbox."""
    return sandbox_rows([row], now)
