"""Template filters of the snapshots pages."""

from django import template

register = template.Library()

MIB_PER_GIB = 1024


@register.filter
def gib_size(size: float | None) -> str:
    """A snapshot's size (Daytona sends GiB as a float) in the unit that shows it.

    Small roots (a directory, a sandbox's home) are a few MiB, which two decimals of
    GiB round to "0 GiB"; the embedded engine even sends 0.0 for under half a MiB.
    """
    if size is None or size < 0:
        return "—"
    if size >= 1:
        return f"{size:.2f}".rstrip("0").rstrip(".") + " GiB"
    mib = size * MIB_PER_GIB
    if mib >= 1:
        return f"{mib:.0f} MiB" if mib >= 10 else f"{mib:.1f}".rstrip("0").rstrip(".") + " MiB"
    return "< 1 MiB"
