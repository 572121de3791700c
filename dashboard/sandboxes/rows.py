"""A sandbox's table row and action buttons, built in Python.

The list renders up to 200 rows and the live consumer renders one per change
per watcher: through the template engine a row took about a millisecond
(includes, inclusion tags, a static() lookup per icon), which made the page
many times slower than the Daytona call it shows. Here a row costs a few
string joins. Every string that comes from Daytona goes through `escape` (the
standard library's, which Django's own wraps) before it is joined in.
"""

import re
from functools import lru_cache
from html import escape as _escape
from urllib.parse import quote

from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dashboard.accounts.access import OWNER_LABEL
from dashboard.core.templatetags.sandbar import SPRITE, state_tone

_UNSAFE = re.compile("[&<>\"']").search


def escape(text: str) -> str:
    """`html.escape`, skipping its five replacements for the usual string that needs none."""
    return _escape(text) if _UNSAFE(text) else text


ACTIONS = {
    "start": ("Start", "play"),
    "stop": ("Stop", ""),
    "archive": ("Archive", "archive"),
    "recover": ("Recover", "rotate-ccw"),
    "delete": ("Delete", "trash-2"),
}
# Literal markup, nothing interpolated.
STOP_GLYPH = SafeString('<span class="stop-glyph" aria-hidden="true"></span>')
NOTHING = SafeString('<span class="muted">—</span>')
DIMMED = SafeString(' class="dimmed"')


@lru_cache(maxsize=64)
def _icon(sprite: str, name: str, size: int, label: str) -> SafeString:
    if label:
        return format_html(
            '<svg class="icon" width="{}" height="{}" role="img" aria-label="{}">'
            '<use href="{}#i-{}"></use></svg>',
            size,
            size,
            label,
            sprite,
            name,
        )
    return format_html(
        '<svg class="icon" width="{}" height="{}" aria-hidden="true" focusable="false">'
        '<use href="{}#i-{}"></use></svg>',
        size,
        size,
        sprite,
        name,
    )


@lru_cache(maxsize=1)
def _sprite() -> str:
    return static(SPRITE)


def icon(name: str, size: int = 16, label: str = "") -> SafeString:
    """An icon from the vendored sprite (its URL looked up once); decorative unless labelled."""
    return _icon(_sprite(), name, size, label)


def badge(state: str, reason: str = "") -> str:
    """The same badge as the `state_badge` tag: colour, dot and the state's name."""
    state = (state or "unknown").lower()
    title = f' title="{escape(reason)}"' if reason else ""
    return (
        f'<span class="badge tone-{state_tone(state)}"{title}>'
        f'<span class="dot" aria-hidden="true"></span>{escape(state.replace("_", " "))}</span>'
    )


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


@lru_cache(maxsize=4096)
def _stamp(moment, zone) -> str:
    """The fixed part of a time cell (a sandbox's times repeat on every load of the list)."""
    local = moment.astimezone(zone)
    return (
        f'<time data-relative datetime="{moment.isoformat()}"'
        f' title="{local.strftime("%Y-%m-%d %H:%M:%S %Z")}">'
    )


def _when(moment, now=None, zone=None) -> str:
    if moment is None:
        return NOTHING
    stamp = _stamp(moment, zone or timezone.get_current_timezone())
    return f"{stamp}{ago(moment, now or timezone.now())}</time>"


@lru_cache(maxsize=1)
def _base() -> str:
    return reverse("sandboxes")


def _url(sandbox_id: str, *rest: str) -> str:
    # reverse() per button was a third of a row's cost; the pattern is fixed.
    return _base() + "/".join([quote(sandbox_id, safe=""), *rest, ""])


def action_button(row, verb: str, view: str) -> str:
    """One action's button: live when the person may act, else disabled with the reason."""
    name = escape(row.sandbox.name)
    label, icon_name = ACTIONS[verb]
    glyph = STOP_GLYPH if verb == "stop" else icon(icon_name)
    in_row = view == "row"
    classes = "btn small" + (" ghost icon-only" if in_row else "")
    classes += " danger-ghost" if verb == "delete" else ""
    text = "" if in_row else f"<span>{label}</span>"
    aria = f' aria-label="{label} {name}"' if in_row else ""
    inside = f'{glyph}<span class="spinner">{icon("loader-circle")}</span>{text}'
    if not row.can_act:
        return (
            f'<button type="button" data-verb="{verb}" class="{classes}" disabled'
            f' title="Only its owner or an admin may {verb} this sandbox"{aria}>{inside}</button>'
        )
    confirm = ""
    if verb == "delete":
        confirm = (
            f' data-confirm="Delete “{name}”? Its files and processes are gone for good."'
            f' data-confirm-action="Delete {name}"'
        )
    target = "closest tr" if in_row else "#sandbox-head"
    # data-once: the page's script sends one token per button, so a double click acts once.
    return (
        f'<button type="button" data-verb="{verb}" class="{classes}"'
        f' hx-post="{_url(row.sandbox.id, verb)}" hx-vals=\'{{"view": "{view}"}}\''
        f' hx-target="{target}" hx-swap="outerHTML" hx-disabled-elt="this" data-once'
        f'{confirm} title="{label} {name}"{aria}>{inside}</button>'
    )


def actions(row, view: str) -> SafeString:
    """The buttons for every action the sandbox's state allows, and a spinner while it moves."""
    busy = ""
    if row.sandbox.transitional:
        busy = (
            '<span class="busy" title="Daytona is working on it">'
            f"{icon('loader-circle', label='Working')}</span>"
        )
    # Safe: every part above escaped what it took from Daytona.
    return SafeString(busy + "".join(action_button(row, v, view) for v in row.verbs))


def _row_parts(row) -> tuple[str, str]:
    """A row without its two time cells: what comes before them, and after."""
    s = row.sandbox
    sid, name = escape(s.id), escape(s.name)
    chips = "".join(
        f'<span class="label-chip" title="{escape(k)}={escape(v)}">'
        f"{escape(k)}={escape(v if len(v) <= 24 else v[:23] + '…')}</span>"
        for k, v in sorted(s.labels.items())
        if k != OWNER_LABEL
    )
    short_id = escape(s.id if len(s.id) <= 9 else s.id[:8] + "…")
    gpu = f" · {s.gpu}&thinsp;GPU" if s.gpu else ""
    gpu_title = f" · {s.gpu} GPU" if s.gpu else ""
    dimmed = DIMMED if s.gone or s.state == "destroying" else ""
    verbs = " ".join(row.verbs) if row.can_act else ""
    snapshot, owner = escape(s.snapshot) or "—", escape(s.owner) or "—"
    # The columns a narrow screen hides come back as this line under the name.
    under = (
        f'<span class="name-sub mono small muted"><span>{short_id}</span>'
        f'<span class="sub-snapshot">{snapshot}</span><span class="sub-owner">{owner}</span></span>'
    )
    head = (
        f'<tr id="sb-{sid}" data-sandbox-id="{sid}" data-state="{escape(s.state)}"{dimmed}>'
        f'<td class="select"><input type="checkbox" name="ids" value="{sid}" form="bulk-form"'
        f' aria-label="Select {name}" data-verbs="{verbs}"></td>'
        f'<td class="name-cell"><a class="cell-title" href="{_url(s.id)}" title="{name}">'
        f"{name}</a>{under}</td>"
        f'<td class="id-cell col-id"><span class="mono small muted" title="{sid}">{short_id}</span>'
        f'<button type="button" class="btn ghost icon-only tiny" data-copy="{sid}"'
        f' aria-label="Copy the id of {name}" title="Copy id">{icon("copy", 14)}</button></td>'
        f'<td class="col-state">{badge(s.state, s.error_reason)}</td>'
        f'<td class="mono small nowrap col-snapshot">{snapshot}</td>'
        f'<td class="num small resources col-resources" title="{s.cpu} vCPU · {s.memory} GiB'
        f' memory · {s.disk} GiB disk{gpu_title}">{s.cpu}&thinsp;vCPU · {s.memory}&thinsp;GiB'
        f" · {s.disk}&thinsp;GiB{gpu}</td>"
        f'<td class="col-labels"><div class="labels-cell">{chips or NOTHING}</div></td>'
        f'<td class="col-owner">{owner}</td>'
    )
    return head, f'<td class="right actions row-actions">{actions(row, "row")}</td></tr>'


# Rows already built, minus their time cells, by everything those parts show. Loading
# the list again mostly shows the same sandboxes, and a lookup costs a tenth of
# building the row; the bound keeps memory flat however many sandboxes pass by.
_parts: dict[tuple, tuple[str, str]] = {}
PARTS_KEPT = 4096


def sandbox_row(row, now=None, zone=None) -> SafeString:
    """The list's table row for one sandbox."""
    s = row.sandbox
    key = (row.can_act, row.verbs, s.id, s.name, s.state, s.desired_state, s.error_reason)
    key += (s.snapshot, s.cpu, s.memory, s.disk, s.gpu, tuple(s.labels.items()))
    parts = _parts.get(key)
    if parts is None:
        if len(_parts) >= PARTS_KEPT:
            _parts.clear()
        parts = _parts[key] = _row_parts(row)
    now, zone = now or timezone.now(), zone or timezone.get_current_timezone()
    # Safe: every value from Daytona was escaped where the parts were built.
    return SafeString(
        f'{parts[0]}<td class="col-last">{_when(s.last_event_at, now, zone)}</td>'
        f'<td class="col-created">{_when(s.created_at, now, zone)}</td>{parts[1]}'
    )


def sandbox_rows(rows) -> SafeString:
    """Every row of the list, as one string for the template to place."""
    now, zone = timezone.now(), timezone.get_current_timezone()
    return SafeString("".join([sandbox_row(row, now, zone) for row in rows]))
