"""WebSocket routes; each area adds its consumers here."""

from django.urls import URLPattern, path

from dashboard.sandboxes.consumers import SandboxesConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/sandboxes/", SandboxesConsumer.as_asgi()),
]
