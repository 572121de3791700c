"""Admins add, change, test and delete connections under Settings."""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from dashboard.accounts.access import settings_access
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record_request
from dashboard.connections import vault
from dashboard.connections.active import SESSION_KEY, usable
from dashboard.connections.forms import ConnectionForm
from dashboard.connections.models import DEFAULT_NAME, Connection, sign_in_headers
from dashboard.connections.probe import Verdict, probe


def _require_admin(request: HttpRequest, action: str) -> None:
    access = settings_access(request.user)
    if not access.see:
        if request.method == "POST":
            record_request(request, action, outcome=Outcome.DENIED, error="not an admin")
        raise PermissionDenied("Only admins manage Daytona connections.")


def _default() -> dict:
    embedded = (
        f"http://{settings.ENGINE_HOST}:{settings.ENGINE_PORT}/api" == settings.DAYTONA_API_URL
    )
    return {"name": DEFAULT_NAME, "api_url": settings.DAYTONA_API_URL, "embedded": embedded}


def connection_list(request: HttpRequest) -> HttpResponse:
    _require_admin(request, "connection.list")
    connections = Connection.objects.prefetch_related("users")
    return render(
        request, "connections/list.html", {"default": _default(), "connections": connections}
    )


def connection_create(request: HttpRequest) -> HttpResponse:
    _require_admin(request, "connection.create")
    form = ConnectionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        connection = form.save()
        _audit(request, "connection.create", connection, form)
        messages.success(request, f"Added the connection {connection.name}.")
        return redirect("connection_edit", pk=connection.pk)
    status = 400 if form.errors else 200
    return render(request, "connections/form.html", {"form": form}, status=status)


def connection_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request, "connection.update")
    connection = get_object_or_404(Connection, pk=pk)
    form = ConnectionForm(request.POST or None, instance=connection)
    if request.method == "POST" and form.is_valid():
        form.save()
        _audit(request, "connection.update", connection, form)
        messages.success(request, f"Saved the connection {connection.name}.")
        return redirect("connection_edit", pk=connection.pk)
    status = 400 if form.errors else 200
    return render(
        request, "connections/form.html", {"form": form, "connection": connection}, status=status
    )


@require_POST
def connection_delete(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request, "connection.delete")
    connection = get_object_or_404(Connection, pk=pk)
    name = connection.name
    connection.delete()
    record_request(
        request, "connection.delete", target_kind="connection", target_id=str(pk), target_name=name
    )
    messages.success(request, f"Deleted the connection {name}.")
    return redirect("connections")


def _audit(request: HttpRequest, action: str, connection: Connection, form: ConnectionForm) -> None:
    # Which fields changed, never their secret's value.
    changed = [name for name in form.changed_data if name != "secret"]
    record_request(
        request,
        action,
        target_kind="connection",
        target_id=str(connection.pk),
        target_name=connection.name,
        detail={
            "changed": changed,
            "secret_replaced": bool(form.cleaned_data.get("secret")),
            "api_url": connection.api_url,
        },
    )


@require_POST
async def connection_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Try the saved connection and say what is wrong, as a fragment for HTMX."""
    request.user = await request.auser()
    if not settings_access(request.user).see:
        await sync_to_async(_require_admin)(request, "connection.test")
    connection = await Connection.objects.filter(pk=pk).afirst()
    if connection is None:
        return HttpResponse("No such connection.", status=404)
    try:
        secret = connection.secret()
    except vault.SecretUnreadable as error:
        verdict = Verdict(ok=False, problem="secret", message=str(error))
    else:
        headers = sign_in_headers(secret, connection.organization_id)
        verdict = await probe(connection.api_url, headers, secret=secret)
    await sync_to_async(record_request)(
        request,
        "connection.test",
        target_kind="connection",
        target_id=str(connection.pk),
        target_name=connection.name,
        outcome=Outcome.SUCCESS if verdict.ok else Outcome.FAILURE,
        error="" if verdict.ok else verdict.message,
        detail={"problem": verdict.problem},
    )
    if request.htmx:
        return await sync_to_async(render)(
            request, "connections/_verdict.html", {"verdict": verdict}
        )
    return await sync_to_async(_page_with_verdict)(request, connection, verdict)


def _page_with_verdict(
    request: HttpRequest, connection: Connection, verdict: Verdict
) -> HttpResponse:
    context = {
        "form": ConnectionForm(instance=connection),
        "connection": connection,
        "verdict": verdict,
    }
    return render(request, "connections/form.html", context)


def menu(request: HttpRequest) -> HttpResponse:
    """The header's switcher, loaded when opened: the page itself costs no query for it."""
    choices = list(usable(request.user).values_list("pk", "name"))
    active = getattr(request, "daytona_connection", None)
    context = {"choices": choices, "active_pk": active.pk if active else None}
    return render(request, "connections/_menu.html", context)


@require_POST
def switch(request: HttpRequest) -> HttpResponse:
    """Use another connection from now on (this session). One not usable: 403, audited."""
    value = request.POST.get("connection", "").strip()
    if value in ("", "default"):
        request.session.pop(SESSION_KEY, None)
        record_request(
            request, "connection.switch", target_kind="connection", target_name=DEFAULT_NAME
        )
        messages.success(request, f"Now using {DEFAULT_NAME}.")
        return redirect("home")
    # isdecimal() alone also takes "²"-like digits int() refuses.
    number = value.isascii() and value.isdecimal() and len(value) < 19
    connection = usable(request.user).filter(pk=int(value)).first() if number else None
    if connection is None:
        # The same answer whether it exists or not: no probing for other people's.
        record_request(
            request,
            "connection.switch",
            target_kind="connection",
            target_id=value[:64],
            outcome=Outcome.DENIED,
            error="not a connection this person may use",
        )
        raise PermissionDenied("You may not use that connection.")
    request.session[SESSION_KEY] = connection.pk
    record_request(
        request,
        "connection.switch",
        target_kind="connection",
        target_id=str(connection.pk),
        target_name=connection.name,
    )
    messages.success(request, f"Now using {connection.name}.")
    return redirect("home")
