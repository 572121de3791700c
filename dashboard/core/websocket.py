"""WebSocket handshakes: only the dashboard's own pages may open one.

A browser sends the session cookie with a WebSocket handshake whatever page opens
it, and the same-origin policy does not apply to WebSockets: the Origin header is
the only thing that tells the dashboard's pages apart from another site's, or
another port's on the same machine (host names alone do not: `http://127.0.0.1:9999`
is another origin than `http://127.0.0.1:8000`). So the origin is checked in full,
scheme, host and port, exactly as Django's CSRF check checks a POST: equal to the
dashboard's own origin (the Host header, which must be in ALLOWED_HOSTS, and the
scheme, from X-Forwarded-Proto behind a proxy as SECURE_PROXY_SSL_HEADER says), or
listed in CSRF_TRUSTED_ORIGINS. A missing Origin, `null` and anything else are refused.
"""

import json
import logging
from typing import Any

from channels.security.websocket import WebsocketDenier
from django.core.exceptions import DisallowedHost

from dashboard.core.django_private import HandshakeRequest, origin_verified

log = logging.getLogger(__name__)

ASGIApp = Any


def origin_problem(scope: dict[str, Any]) -> str | None:
    """Why this handshake's origin may not open a WebSocket here, or None if it may."""
    request = HandshakeRequest(scope)
    origin = request.META.get("HTTP_ORIGIN")
    if not origin:
        return "no Origin header"
    try:
        request.get_host()
    except DisallowedHost:
        # A Host outside ALLOWED_HOSTS is refused even when the Origin matches it:
        # that is how a DNS-rebinding page would look.
        return f"Host {request.META.get('HTTP_HOST', '')!r} is not in ALLOWED_HOSTS"
    # Django's own comparison, so that WebSockets and forms follow one rule.
    if origin_verified(request):
        return None
    return f"Origin {origin!r} is neither this dashboard's origin nor in CSRF_TRUSTED_ORIGINS"


class OriginCheck:
    """ASGI middleware refusing WebSocket handshakes from other origins (a 403)."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        problem = origin_problem(scope)
        if problem is None:
            await self.application(scope, receive, send)
            return
        client = scope.get("client") or ("?", 0)
        log.warning("refused a WebSocket to %s from %s: %s", scope.get("path"), client[0], problem)
        await WebsocketDenier()(scope, receive, send)


# -- frames a consumer cannot take ---------------------------------------------------------

# Standard close codes (RFC 6455, 7.4.1) for a frame a consumer will not take.
UNSUPPORTED_DATA = 1003  # binary where text is expected (or the other way round)
INVALID_PAYLOAD = 1007  # text that is not the JSON it must be
POLICY_VIOLATION = 1008  # JSON, but not a message this socket takes
TOO_BIG = 1009  # larger than this socket takes


class BadFrame(Exception):
    """A frame the consumer refuses: close with `code`, say `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse_json_frame(text: str | None, limit: int) -> dict[str, Any]:
    """The JSON object a text frame must hold, or BadFrame with its close code."""
    if text is None:
        raise BadFrame(UNSUPPORTED_DATA, "This socket takes JSON text frames, not binary.")
    if len(text) > limit:
        raise BadFrame(TOO_BIG, f"Messages are limited to {limit} characters.")
    try:
        message = json.loads(text)
    except ValueError:
        raise BadFrame(INVALID_PAYLOAD, "That message is not JSON.") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise BadFrame(POLICY_VIOLATION, "A message is a JSON object with a type.")
    return message


async def close_for(consumer: Any, bad: BadFrame) -> None:
    """Close `consumer` for a bad frame: one log line (no traceback), the code, the reason."""
    client = (consumer.scope.get("client") or ("?", 0))[0]
    log.warning(
        "closed a WebSocket to %s from %s with %d: %s",
        consumer.scope.get("path"),
        client,
        bad.code,
        bad.reason,
    )
    await consumer.close(code=bad.code, reason=bad.reason)
