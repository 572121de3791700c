from datetime import datetime
from functools import lru_cache

from django import template
from django.templatetags.static import static
from django.utils.html import format_html

from dashboard.daytona.states import TRANSITIONAL

register = template.Library()

SPRITE = "vendor/lucide-1.62.0-sprite.svg"

# One look per meaning, the same in every area: a state badge never relies on colour alone.
STATE_TONES = {
    "started": "running",
    "active": "running",
    "ready": "running",
    "stopped": "idle",
    "inactive": "idle",
    "archived": "stored",
    "error": "failed",
    "build_failed": "failed",
    "destroyed": "idle",
}


@lru_cache(maxsize=1)
def _sprite_url() -> str:
    # The storage's URL for a file is fixed for the life of the process; looking it up
    # (a manifest read) for each of a page's icons cost about a millisecond a page.
    return static(SPRITE)


@register.simple_tag
def icon(name: str, label: str = "", size: int = 16) -> str:
    """An icon from the vendored sprite; decorative unless given a label."""
    href = f"{_sprite_url()}#i-{name}"
    if label:
        return format_html(
            '<svg class="icon" width="{}" height="{}" role="img" aria-label="{}">'
            '<use href="{}"></use></svg>',
            size,
            size,
            label,
            href,
        )
    return format_html(
        '<svg class="icon" width="{}" height="{}" aria-hidden="true" focusable="false">'
        '<use href="{}"></use></svg>',
        size,
        size,
        href,
    )


@register.filter
def state_tone(state: str | None) -> str:
    """The colour family for a state: running, idle, changing, stored or failed."""
    state = (state or "").lower()
    if state in TRANSITIONAL:  # Daytona's, of sandboxes, snapshots and volumes
        return "changing"
    return STATE_TONES.get(state, "idle")


@register.inclusion_tag("_state_badge.html")
def state_badge(state: str | None, reason: str = "") -> dict:
    """A coloured badge with the state's name, and the reason on hover when it failed."""
    state = (state or "unknown").lower()
    return {
        "state": state,
        "label": state.replace("_", " "),
        "tone": state_tone(state),
        "reason": reason,
    }


# A list draws two times a row; Django's `date` filter formats each through a
# Python-level formatter, an eighth of an audit page. These say the same with strftime.
@register.filter(expects_localtime=True)
def iso(value: datetime | None) -> str:
    """As `|date:'c'`: the moment in the current time zone, ISO 8601."""
    return value.isoformat() if isinstance(value, datetime) else ""


@register.filter(expects_localtime=True)
def stamp(value: datetime | None) -> str:
    """As `|date:'Y-m-d H:i:s T'`: what a person reads, in the current time zone."""
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if isinstance(value, datetime) else ""
