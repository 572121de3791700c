from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from dashboard.connections.active import DEFAULT, SESSION_KEY, resolve
from dashboard.daytona import client


class ActiveConnectionMiddleware:
    """Aims the Daytona client at the connection the person chose, for this request.

    Sets `request.daytona_connection` (an `active.Active`). A person on the Default
    costs no query; on another connection, one (its row and their grant).
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        request.daytona_connection = await self._active(request)
        token = client.use_target(request.daytona_connection.target)
        try:
            return await self.get_response(request)
        finally:
            client.reset_target(token)

    async def _active(self, request: HttpRequest):
        session = getattr(request, "session", None)
        if session is None:
            return DEFAULT
        user = await request.auser()
        if not user.is_authenticated:
            return DEFAULT
        chosen = await session.aget(SESSION_KEY)
        active = await resolve(user, chosen)
        if chosen is not None and active.pk is None:
            # Deleted, or no longer granted: back to the Default for good.
            await session.apop(SESSION_KEY, None)
        return active
