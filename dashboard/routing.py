"""WebSocket routes; each area adds its consumers here."""

from django.urls import URLPattern, path

from dashboard.sandboxes.consumers import SandboxesConsumer
from dashboard.terminal.routing import websocket_urlpatterns as terminal_routes

websocket_urlpatterns: list[URLPattern] = [
    path("ws/sandboxes/", SandboxesConsumer.as_asgi()),
    *terminal_routes,
]
