"""Log lines for production: a request id on each, secrets masked, JSON on request.

`RequestId` (an ASGI middleware, wrapped around the whole app in dashboard/asgi.py)
gives every HTTP request and WebSocket an id: the proxy's `X-Request-ID` when it sent a
sane one, else a new one. HTTP responses carry it back in `X-Request-ID`, and every
record logged while serving it carries it as `request_id` (a context variable, which
the tasks a request starts inherit). settings.LOGGING wires the filters and formatter.
"""

import contextlib
import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

HEADER = b"x-request-id"
_NO_REQUEST = "-"
# What a proxy may hand us as an id: short and printable, so it cannot forge log lines.
_SANE_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=_NO_REQUEST)
MASK = "[masked]"
# Secrets with a shape: bearer tokens, and the one-time link for choosing a password.
_SHAPED = (
    (re.compile(r"(Bearer\s+)[^\s'\",]+", re.IGNORECASE), rf"\1{MASK}"),
    (re.compile(r"(/set-password/)[^/\s]+/[^/\s]+"), rf"\1{MASK}"),
)
_MIN_SECRET = 8  # a shorter "secret" would mask ordinary words


def current_request_id() -> str:
    """The id of the request being served, or "-" outside one."""
    return _current.get()


class RequestId:
    """ASGI middleware: a request id for each HTTP request and WebSocket (see module doc)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope) or uuid.uuid4().hex
        token = _current.set(request_id)
        try:
            if scope["type"] == "http":
                await self.app(scope, receive, _echoing(send, request_id.encode()))
            else:
                await self.app(scope, receive, send)
        finally:
            _current.reset(token)


def _incoming(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            return value.decode("ascii") if _SANE_ID.fullmatch(value) else None
    return None


def _echoing(send: Any, value: bytes) -> Any:
    async def send_with_id(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
            message = {**message, "headers": [*headers, (HEADER, value)]}
        await send(message)

    return send_with_id


class RequestContext(logging.Filter):
    """Adds `request_id` to every record (for the text format's `%(request_id)s`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current.get()
        return True


class ReadinessIsNotAnError(logging.Filter):
    """Django logs each 5xx answer as an error; /readyz's 503 is an answer, not a fault
    (a balancer asks every few seconds while a part is away): a warning instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if (
            getattr(record, "status_code", None) == 503
            and getattr(request, "path", "") == "/readyz"
        ):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class MaskSecrets(logging.Filter):
    """Masks the Daytona API key, SECRET_KEY and shaped secrets in the message and the
    traceback, whichever logger wrote them; the record keeps only the masked text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


def mask(text: str) -> str:
    """`text` with every known secret replaced by [masked]."""
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _SHAPED:
        text = pattern.sub(replacement, text)
    return text


def _secrets() -> list[str]:
    # Imported here: logging is configured while Django sets up, before apps may load.
    from dashboard.daytona.client import DaytonaError, api_key

    found = [settings.SECRET_KEY, settings.DAYTONA_API_KEY]
    # The key in use, also when it came from the embedded engine's key file.
    with contextlib.suppress(DaytonaError):
        found.append(api_key())
    return [secret for secret in found if len(secret) >= _MIN_SECRET]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", _NO_REQUEST),
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)
