"""The one module that uses Django internals; nothing else in dashboard/ may.

Django has no public API for checking a WebSocket handshake's Origin the way its
CSRF check checks a POST's (scheme, host and port, SECURE_PROXY_SSL_HEADER,
CSRF_TRUSTED_ORIGINS). Reusing its rule keeps WebSockets and forms on one rule,
at the price of two private names: `HttpRequest._get_scheme` (where a request
says its scheme) and `CsrfViewMiddleware._origin_verified`. They may change in any
Django release: tests/core/test_django_private.py pins the Django version they
were read against and fails on any other, so that an upgrade re-reads them.
"""

from typing import Any

from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

# The Django release whose internals this module was checked against.
CHECKED_AGAINST = "6.1.3"


class HandshakeRequest(HttpRequest):
    """A WebSocket handshake seen as Django sees an HTTP request, for its checks."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self.scope_scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
        server = scope.get("server") or ("", "")
        self.META = {"SERVER_NAME": str(server[0] or ""), "SERVER_PORT": str(server[1] or "")}
        for name, value in scope.get("headers", []):
            key = name.decode("latin-1").upper().replace("-", "_")
            self.META[f"HTTP_{key}"] = value.decode("latin-1")

    def _get_scheme(self) -> str:
        # `request.scheme` asks this unless SECURE_PROXY_SSL_HEADER says otherwise.
        return self.scope_scheme


def origin_verified(request: HandshakeRequest) -> bool:
    """Whether the request's Origin passes Django's CSRF origin rule."""
    return CsrfViewMiddleware(lambda request: None)._origin_verified(request)
