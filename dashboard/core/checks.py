"""Django's deploy checks, run against the middleware ours extend.

Django finds its security middleware by dotted path
(`"django.middleware.security.SecurityMiddleware" in MIDDLEWARE`). MIDDLEWARE names
our subclasses (`dashboard/core/middleware.py`), so the checks that depend on them
would pass without looking (HSTS, the HTTPS redirect, a secure CSRF cookie) and the
presence checks (security.W001-W003, silenced in settings) would warn falsely. Here
those checks run again, with each class replaced by the Django class it extends.
"""

from django.conf import settings
from django.core import checks
from django.core.checks.security import base, csrf
from django.test.utils import override_settings
from django.utils.module_loading import import_string

DJANGO_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
# Django's presence checks, silenced in settings, and what they look for.
PRESENCE = {
    "security.W001": "django.middleware.security.SecurityMiddleware",
    "security.W002": "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "security.W003": "django.middleware.csrf.CsrfViewMiddleware",
}
DEPENDENT_CHECKS = (
    base.check_sts,
    base.check_sts_include_subdomains,
    base.check_sts_preload,
    base.check_content_type_nosniff,
    base.check_ssl_redirect,
    base.check_xframe_deny,
    base.check_referrer_policy,
    base.check_cross_origin_opener_policy,
    csrf.check_csrf_cookie_secure,
)


def as_django(path: str) -> str:
    """The Django middleware `path` extends (itself if it is one, or extends none)."""
    cls = import_string(path)
    for candidate in DJANGO_MIDDLEWARE:
        if issubclass(cls, import_string(candidate)):
            return candidate
    return path


@checks.register(checks.Tags.security, deploy=True)
def security_middleware(app_configs, **kwargs) -> list[checks.CheckMessage]:
    present = [as_django(path) for path in settings.MIDDLEWARE]
    messages: list[checks.CheckMessage] = [
        checks.Warning(
            f"No class in MIDDLEWARE is or extends {path}.",
            hint=f"It replaces Django's {silenced}, which looks for the exact path.",
            id="sandbar.W001",
        )
        for silenced, path in PRESENCE.items()
        if path not in present
    ]
    with override_settings(MIDDLEWARE=present):
        messages += [message for check in DEPENDENT_CHECKS for message in check(app_configs)]
    return messages
