"""The ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
# Django must be set up before the consumers (and their models) are imported.
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from dashboard.core.websocket import OriginCheck  # noqa: E402
from dashboard.daytona import client as daytona_client  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402

router = ProtocolTypeRouter(
    {
        "http": django_http,
        # The full origin is checked (dashboard/core/websocket.py): another site, or
        # another port of this machine, cannot open a terminal with a visitor's cookie.
        "websocket": OriginCheck(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


async def application(scope, receive, send) -> None:
    """The router. A server that sends lifespan events (uvicorn, as `manage.py up` runs
    it) shares one Daytona client for its lifetime (see `dashboard.daytona.client`);
    without them, each call to Daytona opens a client of its own."""
    if scope["type"] != "lifespan":
        await router(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await daytona_client.open_shared()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await daytona_client.close_shared()
            await send({"type": "lifespan.shutdown.complete"})
            return
