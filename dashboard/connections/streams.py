"""WebSockets (live list, terminals, logs) aim at the person's connection, as pages do."""

from channels.db import database_sync_to_async

from dashboard.connections.active import DEFAULT, SESSION_KEY, resolve
from dashboard.daytona import client


class ActiveConnectionStreams:
    """ASGI middleware inside Channels' AuthMiddlewareStack: the session's choice, checked
    again against the person's grants when the socket opens, holds for its lifetime
    (switching later leaves an open terminal where it is). Tasks the consumer starts
    inherit it, so a watch shared per connection must be keyed by `client.scope()`."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send) -> None:
        active = DEFAULT
        user, session = scope.get("user"), scope.get("session")
        if user is not None and session is not None and user.is_authenticated:
            chosen = await database_sync_to_async(session.get)(SESSION_KEY)
            active = await resolve(user, chosen)
        token = client.use_target(active.target)
        try:
            await self.inner(scope, receive, send)
        finally:
            client.reset_target(token)
