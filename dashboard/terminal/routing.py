"""The terminal's WebSocket routes (included by dashboard/routing.py)."""

from django.urls import URLPattern, re_path

from dashboard.core.converters import DAYTONA_ID as SANDBOX_ID
from dashboard.terminal.consumers import SESSION_ID, TerminalConsumer
from dashboard.terminal.logs import LogsConsumer

websocket_urlpatterns: list[URLPattern] = [
    re_path(
        rf"^ws/sandboxes/(?P<sandbox_id>{SANDBOX_ID})/terminal/(?P<session>{SESSION_ID})/$",
        TerminalConsumer.as_asgi(),
    ),
    re_path(rf"^ws/sandboxes/(?P<sandbox_id>{SANDBOX_ID})/logs/$", LogsConsumer.as_asgi()),
]
