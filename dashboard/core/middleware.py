"""Django's own middleware, with their hooks run on the event loop.

Under ASGI, Django calls every hook of a classic middleware (`process_request`,
`process_view`, `process_response`) in a worker thread through `sync_to_async`:
sixteen thread round trips per request for this stack, about 2 ms of every page
on this machine. Most of these hooks only read and write headers, cookies and
objects already in memory, so here they run inline. The few that may reach the
database or the disk (saving a session, parsing a posted body, loading a session
to store messages) still go through a thread, and only on the requests where
they might.

If an inline hook did reach the database after all, Django raises
`SynchronousOnlyOperation` instead of blocking the loop; the test suite runs
without `DJANGO_ALLOW_ASYNC_UNSAFE`, so such a change fails there.
"""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csp import ContentSecurityPolicyMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def session_loaded(request) -> bool:
    """Whether reading or writing the session now costs no query (or there is none)."""
    session = getattr(request, "session", None)
    return session is None or session.accessed


class InlineHooks:
    """Runs `process_request` and `process_response` on the event loop unless
    `in_thread` says this request's hook may block."""

    def in_thread(self, request, stage: str) -> bool:
        return False

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            response = await self._run(self.process_request, "request", request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = await self._run(self.process_response, "response", request, response)
        return response

    async def _run(self, hook, stage: str, request, *args):
        if self.in_thread(request, stage):
            return await sync_to_async(hook, thread_sensitive=True)(request, *args)
        return hook(request, *args)


class Security(InlineHooks, SecurityMiddleware):
    """Headers and the HTTPS redirect."""


class ContentSecurityPolicy(InlineHooks, ContentSecurityPolicyMiddleware):
    """The nonce and the policy header."""


class Common(InlineHooks, CommonMiddleware):
    """The trailing-slash redirect (a URL resolve) and Content-Length."""


class XFrameOptions(InlineHooks, XFrameOptionsMiddleware):
    """One header."""


class Session(InlineHooks, SessionMiddleware):
    """Opening the store is lazy; only saving a changed session is a query."""

    def in_thread(self, request, stage: str) -> bool:
        if stage == "request":
            return False
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class Messages(InlineHooks, MessageMiddleware):
    """Messages live in a cookie, overflowing into the session: storing them reads
    the session, which is a query unless this request already loaded it."""

    def in_thread(self, request, stage: str) -> bool:
        return stage == "response" and not session_loaded(request)


class Csrf(InlineHooks, CsrfViewMiddleware):
    """The secret is in a cookie; checking a POST may parse its body (a large upload
    spills to disk), so unsafe methods are checked in a thread."""

    def in_thread(self, request, stage: str) -> bool:
        return settings.CSRF_USE_SESSIONS and not session_loaded(request)

    async def process_view(self, request, callback, callback_args, callback_kwargs):
        check = super().process_view
        if request.method in SAFE_METHODS and not self.in_thread(request, "view"):
            return check(request, callback, callback_args, callback_kwargs)
        return await sync_to_async(check, thread_sensitive=True)(
            request, callback, callback_args, callback_kwargs
        )
