"""Find elements of a rendered page by their attributes (the standard library's parser)."""

from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.text: dict[str, list[str]] = {}
        self._stack: list[tuple[str, str]] = []  # (tag, id or "") of the open elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.found.append((tag, values))
        if tag not in VOID:
            self._stack.append((tag, values.get("id", "")))
            self.text.setdefault(values.get("id", ""), [])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index][0] == tag:
                del self._stack[index:]
                return

    def handle_data(self, data: str) -> None:
        for _, element_id in self._stack:
            if element_id:
                self.text[element_id].append(data)


def _parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    return collector


def elements(html: str, tag: str, **attrs: str) -> list[dict[str, str]]:
    """The attributes of every `tag` whose attributes include `attrs` (``_`` for ``-``)."""
    wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
    return [
        values
        for name, values in _parse(html).found
        if name == tag and all(values.get(k) == v for k, v in wanted.items())
    ]


def text_of(html: str, element_id: str) -> str:
    """The text inside the element with this id ('' when there is none)."""
    return " ".join("".join(_parse(html).text.get(element_id, [])).split())
