"""The Django internals dashboard/core/django_private.py uses, pinned to one release."""

import inspect

import django
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

from dashboard.core import django_private


def test_django_is_the_release_the_private_module_was_checked_against() -> None:
    assert django.__version__ == django_private.CHECKED_AGAINST, (
        f"Django is now {django.__version__}: re-read HttpRequest._get_scheme and "
        "CsrfViewMiddleware._origin_verified in that release, adapt "
        "dashboard/core/django_private.py, then update CHECKED_AGAINST"
    )


def test_the_internals_it_uses_have_the_shapes_it_expects() -> None:
    assert list(inspect.signature(HttpRequest._get_scheme).parameters) == ["self"]
    assert list(inspect.signature(CsrfViewMiddleware._origin_verified).parameters) == [
        "self",
        "request",
    ]


def test_the_handshakes_scheme_reaches_djangos_request(settings) -> None:
    settings.ALLOWED_HOSTS = ["dash.example"]
    scope = {"scheme": "wss", "headers": [(b"host", b"dash.example"), (b"origin", b"x")]}
    request = django_private.HandshakeRequest(scope)
    assert request.scheme == "https"
    assert request.build_absolute_uri("/") == "https://dash.example/"
