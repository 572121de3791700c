"""The ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os
import resource

from django.core.asgi import get_asgi_application


def raise_open_files_limit() -> int:
    """Raise the soft limit on open descriptors to the hard one; the new soft limit.

    Each open terminal or live page holds a browser socket and a socket to Daytona,
    so the usual soft 1024 ends in the hundreds while the hard limit allows far more.
    (The engine does the same in its own process: it imports nothing of ours.)
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


raise_open_files_limit()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
# Django must be set up before the consumers (and their models) are imported.
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from dashboard.connections.streams import ActiveConnectionStreams  # noqa: E402
from dashboard.core.logs import RequestId  # noqa: E402
from dashboard.core.websocket import OriginCheck  # noqa: E402
from dashboard.daytona import client as daytona_client  # noqa: E402
from dashboard.limits import history as usage_history  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402

# Every request and WebSocket gets an id for its log lines (dashboard/core/logs.py).
router = RequestId(
    ProtocolTypeRouter(
        {
            "http": django_http,
            # The full origin is checked (dashboard/core/websocket.py): another site, or
            # another port of this machine, cannot open a terminal with a visitor's cookie.
            # Each socket talks to the Daytona connection its person chose.
            "websocket": OriginCheck(
                AuthMiddlewareStack(ActiveConnectionStreams(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
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
            usage_history.start()  # usage over time, once per connection (a lease row)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await usage_history.stop()
            await daytona_client.close_shared()
            await send({"type": "lifespan.shutdown.complete"})
            return
