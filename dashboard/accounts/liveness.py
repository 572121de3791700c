"""Open WebSockets end with the sign-in that opened them.

HTTP requests check the session and the account on every request; a WebSocket is
checked once, at its handshake, and may stay open for hours. So each consumer keeps
an `AccountWatch`: it listens on a Channels group of its person ("account.<pk>")
and, for a sandbox's terminal or logs, of that sandbox, and checks again when told
that something changed, when the session's expiry comes, and every RECHECK_SECONDS
as a backstop (for changes made outside the dashboard's processes, say
`manage.py changepassword` with the in-memory channel layer). What tells it:

- signing out (`user_logged_out`): the consumers of that session end at once;
- saving a person's role, active flag or password (`post_save`), from any view,
  action or the admin shell of this process;
- a successful sandbox action in the audit trail (`sandbox.labels` changing the
  owner, `sandbox.delete`, ...), and the live list's view of Daytona
  (`dashboard.sandboxes.live`), which also sees changes made straight in Daytona.

A check that fails closes the socket with a close code and a reason the page shows
(4401: the sign-in is over; 4403: no longer allowed; 4404: the sandbox is gone).
"""

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import auth
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from dashboard.accounts.models import User

log = logging.getLogger(__name__)

SIGNED_OUT = 4401
NOT_ALLOWED = 4403
GONE = 4404
# A backstop for changes no signal reaches; signals and the expiry timer are what
# make the one-second promise.
RECHECK_SECONDS = 30.0
# Fields whose change may take a right away; any other save (last_login) is ignored.
WATCHED_FIELDS = frozenset({"role", "is_active", "password"})


@dataclass(frozen=True)
class Ended:
    """Why a consumer must close: its close code and a reason for the page."""

    code: int
    reason: str


def account_group(user_pk: int) -> str:
    return f"account.{user_pk}"


def sandbox_group(sandbox_id: str) -> str:
    # Group names are short and plain; a sandbox id may be neither.
    return f"sandbox.{hashlib.sha256(sandbox_id.encode()).hexdigest()[:32]}"


_sending: set[asyncio.Task] = set()


def publish(group: str, message: dict[str, Any]) -> None:
    """Tell every consumer in `group`, once the current transaction has committed.

    Never raises: a change to an account must not fail because nobody could be told
    (the watch's periodic check still catches it).
    """

    def send() -> None:
        layer = get_channel_layer()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        try:
            if loop is None:
                async_to_sync(layer.group_send)(group, message)
            else:
                # Called on an event loop (code allowed to be sync there): no waiting on it.
                task = loop.create_task(layer.group_send(group, message))
                _sending.add(task)
                task.add_done_callback(_sending.discard)
        except Exception as error:
            log.warning("could not tell %s about %s: %s", group, message["type"], error)

    transaction.on_commit(send)


# -- what a consumer checks -------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """A session's sign-in as it stands now: the person, or why there is none."""

    user: User | None
    expires_at: datetime | None = None
    problem: str = ""


def _expires_at(store: Any) -> datetime | None:
    """When the stored session expires (the database's own date, not the cookie's)."""
    model = getattr(store, "get_model_class", None)
    if model is not None:
        return (
            model()
            .objects.filter(session_key=store.session_key)
            .values_list("expire_date", flat=True)
            .first()
        )
    return store.get_expiry_date()


def current_sign_in(session_key: str | None, password: str) -> SignIn:
    """Whether the session `session_key` still signs someone in; `password` is the
    password hash the consumer opened with (a changed password ends it)."""
    if not session_key:
        return SignIn(None, problem="You are signed out.")
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    expires_at = _expires_at(store)
    if expires_at is None:
        return SignIn(None, problem="You are signed out.")
    if expires_at <= timezone.now():
        return SignIn(None, problem="Your session has expired; sign in again.")
    user_id = store.get(auth.SESSION_KEY)
    person = User.objects.filter(pk=user_id).first() if user_id else None
    if person is None:
        return SignIn(None, problem="You are signed out.")
    if not person.is_active:
        return SignIn(None, problem="Your account has been deactivated.")
    if person.password != password:
        return SignIn(None, problem="Your password was changed; sign in again.")
    request = HttpRequest()
    request.session = store
    # Django's own verdict on the rest (backend, session hash, secret key rotation).
    user = auth.get_user(request)
    if not user.is_authenticated or user.pk != person.pk:
        return SignIn(None, problem="Your sign-in is no longer valid; sign in again.")
    return SignIn(user, expires_at)


# -- the watch --------------------------------------------------------------------------

Check = Callable[[User, dict[str, Any]], Awaitable[Ended | None]]
End = Callable[[Ended], Awaitable[None]]


class AccountWatch:
    """Keeps one open WebSocket to its sign-in; see the module's docstring.

    `check(user, message)` is the consumer's own rule, asked with the person as they
    are now and the message that woke the watch (`sandbox` holds the sandbox's new
    API data when the live list saw it change); `end` closes the consumer.
    """

    def __init__(
        self, scope: dict[str, Any], check: Check, end: End, sandbox_id: str | None = None
    ) -> None:
        session = scope.get("session")
        self.session_key: str | None = getattr(session, "session_key", None)
        self.password: str = getattr(scope.get("user"), "password", "")
        self.groups = [account_group(scope["user"].pk)]
        if sandbox_id is not None:
            self.groups.append(sandbox_group(sandbox_id))
        self.check = check
        self.end = end
        self.expires_at: datetime | None = None
        self.task: asyncio.Task[None] | None = None
        self.ended: Ended | None = None

    async def start(self) -> None:
        """Join the groups and watch; a sign-in that already ended ends the consumer now."""
        layer = get_channel_layer()
        self.channel = await layer.new_channel()
        for group in self.groups:
            await layer.group_add(group, self.channel)
        self.task = asyncio.create_task(self._run(), name=f"account-watch {self.groups[0]}")

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        layer = get_channel_layer()
        if getattr(self, "channel", None):
            for group in self.groups:
                with contextlib.suppress(Exception):
                    await layer.group_discard(group, self.channel)

    def _timeout(self) -> float:
        if self.expires_at is None:
            return RECHECK_SECONDS
        until_expiry = (self.expires_at - timezone.now()).total_seconds()
        return max(0.05, min(RECHECK_SECONDS, until_expiry + 0.05))

    async def _run(self) -> None:
        layer = get_channel_layer()
        message: dict[str, Any] = {"type": "account.check"}
        while True:
            ended = await self._verdict(message)
            if ended is not None:
                self.ended = ended
                log.info("closing a WebSocket of %s: %s", self.groups[0], ended.reason)
                await self.end(ended)
                return
            try:
                message = await asyncio.wait_for(layer.receive(self.channel), self._timeout())
            except TimeoutError:
                message = {"type": "account.check"}
                # Refreshes the membership too (the in-memory layer forgets after a day).
                for group in self.groups:
                    await layer.group_add(group, self.channel)

    async def _verdict(self, message: dict[str, Any]) -> Ended | None:
        signed_out = message.get("type") == "account.signed_out"
        if signed_out and message.get("session") == self.session_key:
            return Ended(SIGNED_OUT, "You signed out.")
        sign_in = await database_sync_to_async(current_sign_in)(self.session_key, self.password)
        if sign_in.user is None:
            return Ended(SIGNED_OUT, sign_in.problem)
        self.expires_at = sign_in.expires_at
        return await self.check(sign_in.user, message)


# -- who tells it -------------------------------------------------------------------------


def user_saved(sender: type, instance: User, update_fields=None, created=False, **kwargs) -> None:
    if created or (update_fields is not None and not WATCHED_FIELDS & set(update_fields)):
        return
    publish(account_group(instance.pk), {"type": "account.changed"})


def user_signed_out(sender: type, request: HttpRequest, user: User | None, **kwargs) -> None:
    if user is None:
        return
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    publish(account_group(user.pk), {"type": "account.signed_out", "session": session_key})


# Sandbox actions after which its terminals and logs look again at who may use them.
# Runs, commands and file changes are made through those very consumers: not these.
QUIET_PREFIXES = ("terminal.", "command.", "file.")


def entry_recorded(sender: type, entry: Any, **kwargs) -> None:
    if entry.target_kind != "sandbox" or not entry.target_id or entry.outcome != "success":
        return
    if entry.action.startswith(QUIET_PREFIXES):
        return
    publish(sandbox_group(entry.target_id), {"type": "sandbox.changed"})


def connect_signals() -> None:
    from django.contrib.auth.signals import user_logged_out
    from django.db.models.signals import post_save

    from dashboard.audit.trail import recorded

    post_save.connect(user_saved, sender=User, dispatch_uid="liveness.user_saved")
    user_logged_out.connect(user_signed_out, dispatch_uid="liveness.user_signed_out")
    recorded.connect(entry_recorded, dispatch_uid="liveness.entry_recorded")
