"""The terminal's WebSocket routes (included by dashboard/routing.py)."""

from django.urls import URLPattern, re_path

from dashboard.terminal.consumers import SESSION_ID, TerminalConsumer
from dashboard.terminal.logs import LogsConsumer

SANDBOX_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}"

websocket_urlpatterns: list[URLPattern] = [
    re_path(
        rf"^ws/sandboxes/(?P<sandbox_id>{SANDBOX_ID})/terminal/(?P<session>{SESSION_ID})/$",
        TerminalConsumer.as_asgi(),
    ),
    re_path(rf"^ws/sandboxes/(?P<sandbox_id>{SANDBOX_ID})/logs/$", LogsConsumer.as_asgi()),
]
