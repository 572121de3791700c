"""List rows drawn once and kept while nothing they are drawn from changes.

Through the template engine a list row costs a millisecond or more of CPU: more, on
a page of them, than the Daytona call behind the whole page. And a page loaded again
(by its reader, or by its own auto-refresh) mostly shows the same rows. `KeptRows`
keeps each row's HTML keyed by everything it is drawn from: the row itself (frozen,
hashable data: what Daytona sent and what this reader may do), the row templates'
text, the time zone and the language. The words of a row's times ("3 minutes ago")
change with the clock, so a kept row keeps holes for them, filled on every load: a
row template writes `{% firstof ago.created row.created_at|naturaltime %}`.
"""

import contextlib
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime

from django.contrib.humanize.templatetags.humanize import naturaltime
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.safestring import SafeString

_HOLE = re.compile("<!--ago:([a-z_]+)-->")


class KeptRows:
    """The rows of one list, each drawn by `template` (which includes `included`)."""

    def __init__(
        self, template: str, *included: str, times: Sequence[str] = (), limit: int = 2000
    ) -> None:
        self.template = template
        self.templates = (template, *included)
        self.holes = {name: SafeString(f"<!--ago:{name}-->") for name in times}
        self.limit = limit
        self._kept: OrderedDict[tuple, tuple[str, ...]] = OrderedDict()

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)

    def html(
        self, rows: Sequence[Hashable], times_of: Callable[[object], Mapping[str, datetime | None]]
    ) -> list[SafeString]:
        """Each row's HTML, kept from an earlier page when drawn from the same data;
        `times_of(row)` gives the moments whose words fill the row's holes."""
        # Once a page: the templates' text (read again in development when changed),
        # and the time zone and language, each a context-local read.
        place = (self._sources(), timezone.get_current_timezone_name(), translation.get_language())
        out = []
        for row in rows:
            key = (row, place)
            pieces = self._kept.get(key)
            if pieces is None:
                pieces = self._kept[key] = self._draw(row)
                while len(self._kept) > self.limit:
                    with contextlib.suppress(KeyError):  # emptied meanwhile by another thread
                        self._kept.popitem(last=False)
            else:
                with contextlib.suppress(KeyError):  # dropped meanwhile by another thread
                    self._kept.move_to_end(key)
            if len(pieces) > 1:
                moments = times_of(row)
                pieces = [
                    escape(str(naturaltime(moments[piece]))) if odd % 2 else piece
                    for odd, piece in enumerate(pieces)
                ]
            out.append(SafeString("".join(pieces)))
        return out

    def _sources(self) -> tuple[str, ...]:
        return tuple(get_template(name).template.source for name in self.templates)

    def _draw(self, row: Hashable) -> tuple[str, ...]:
        """The row's HTML cut where its times' words go: (html, "created", html, ...)."""
        html = render_to_string(self.template, {"row": row, "ago": self.holes})
        return tuple(_HOLE.split(html))
