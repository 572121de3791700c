"""The converters our URLs use. dashboard/urls.py registers them, once, before it
reads any area's URLconf."""

# A Daytona id or name (sandbox, snapshot, volume): what Daytona accepts in its URLs,
# and nothing that could break one of ours. The one definition of it: the terminal's
# WebSocket routes and the forms that take a sandbox by name use it too.
DAYTONA_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}"


class _Text:
    """The matched text is the value, both ways."""

    regex: str

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class DaytonaIdConverter(_Text):
    regex = DAYTONA_ID


class SandboxVerbConverter(_Text):
    """What a sandbox's action URL may say it does (the view checks again)."""

    regex = r"start|stop|archive|recover|delete"
