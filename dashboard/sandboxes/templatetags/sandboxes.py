from uuid import uuid4

from django import template

from dashboard.daytona.labels import OWNER_LABEL

register = template.Library()


@register.simple_tag
def once() -> str:
    """A one-time token for an action form, so a double click runs it once."""
    return uuid4().hex


@register.filter
def interval(minutes: int | None, kind: str = "stop") -> str:
    """A lifecycle interval as people say it ("15 min", "Off", "On stop")."""
    if minutes is None:
        return "—"
    if kind == "delete" and minutes < 0:
        return "Off"
    if kind == "delete" and minutes == 0:
        return "On stop"
    if kind == "stop" and minutes == 0:
        return "Off"
    if kind == "archive" and minutes == 0:
        return "Maximum"
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


@register.filter
def without_owner(labels: dict[str, str]) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in labels.items() if k != OWNER_LABEL)


@register.simple_tag
def sandbox_actions(row, view: str = "page") -> str:
    """The action buttons the sandbox's state allows."""
    from dashboard.sandboxes.rows import actions

    return actions(row, view)
