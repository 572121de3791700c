"""Sandbar settings: every value comes from the environment (see README, "Settings")."""

import os
import secrets
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from dashboard.env import env_bool, env_int, env_list, env_path, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("SANDBAR_DATA_DIR", BASE_DIR / "var")
# The owner's only: it holds the database and keys (dashboard/core/files.py checks it).
DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)


def _secret_key() -> str:
    # Generated once and kept in the data directory, so a fresh install is
    # secure without configuration and sessions survive restarts.
    configured = env_str("SECRET_KEY", "")
    if configured:
        return configured
    path = DATA_DIR / "secret-key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Behind a reverse proxy that sets X-Forwarded-For and X-Forwarded-Proto.
BEHIND_PROXY = env_bool("SANDBAR_BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SANDBAR_SECURE_COOKIES", False)
# Served over HTTPS only (docs/deploy.md): plain HTTP is redirected, except the health
# checks a load balancer or container runtime makes on the inside, which are plain.
SECURE_SSL_REDIRECT = env_bool("SANDBAR_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# HSTS: browsers refuse plain HTTP to this host for that long. 0 (the default) is off;
# start small (300) and raise it once HTTPS is known to work: it cannot be taken back.
SECURE_HSTS_SECONDS = env_int("SANDBAR_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SANDBAR_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SANDBAR_HSTS_PRELOAD", False)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "dashboard.core",
    "dashboard.accounts",
    "dashboard.audit",
    "dashboard.connections",
    "dashboard.sandboxes",
    "dashboard.snapshots",
    "dashboard.volumes",
    "dashboard.limits",
    "dashboard.terminal",
    "dashboard.engine",
]

# Django's own middleware, unchanged: its deploy checks (`manage.py check --deploy`)
# look for these exact paths. Under ASGI each runs its hooks through a thread
# (docs/benchmarks.md has what that costs).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "dashboard.accounts.middleware.LoginRequiredMiddleware",
    # Aims the Daytona client at the connection the person chose (dashboard/connections).
    "dashboard.connections.middleware.ActiveConnectionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
ASGI_APPLICATION = "dashboard.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "dashboard.accounts.context_processors.sandbar",
                "dashboard.connections.context_processors.active_connection",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'sandbar.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes writers queue for the lock instead of failing mid-way,
    # which the audit chain relies on; WAL lets readers go on meanwhile.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Browser tests serve the app from another thread: the test database must be
    # a file, and one per test run so that concurrent runs cannot collide.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"sandbar-test-{os.getpid()}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout by default, which races the
            # layer's 5 s blocking pop: every idle socket's consumer died with "Timeout
            # reading from". A longer one still notices a dead Redis.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
        }
    }
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# How long a worker's lease on a shared job (following Daytona for the live pages)
# outlives its last renewal: a killed worker's job moves to another within it.
LEASE_SECONDS = env_int("SANDBAR_LEASE_SECONDS", 10, minimum=2, maximum=600)

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in throttling (dashboard/accounts/ratelimit.py): failed sign-ins allowed per
# account from one address, and per address over all accounts, in the window.
LOGIN_ATTEMPTS_LIMIT = env_int("SANDBAR_LOGIN_ATTEMPTS", 5, minimum=1)
LOGIN_ADDRESS_ATTEMPTS_LIMIT = env_int("SANDBAR_LOGIN_ADDRESS_ATTEMPTS", 20, minimum=1)
LOGIN_ATTEMPTS_WINDOW = env_int("SANDBAR_LOGIN_WINDOW_SECONDS", 300, minimum=10)
# Admins must sign in with a code from an authenticator app (dashboard/accounts/second_factor.py).
ADMIN_SECOND_FACTOR = env_bool("SANDBAR_ADMIN_SECOND_FACTOR", False)
SESSION_COOKIE_AGE = env_int("SANDBAR_SESSION_HOURS", 12, minimum=1) * 3600
PASSWORD_RESET_TIMEOUT = 3 * 24 * 3600
# Days the audit trail keeps entries (`manage.py prune_audit`); unset or 0 keeps every
# entry. The embedded engine reads the same variable for its own log (default 90 there).
AUDIT_RETENTION_DAYS = env_int("SANDBAR_AUDIT_RETENTION_DAYS", 0, minimum=0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
}
# ServeStatic is WhiteNoise's ASGI-native fork: files are streamed asynchronously
# instead of being read into memory through Django's sync-iterator fallback.
SERVESTATIC_USE_FINDERS = DEBUG

# A strict policy: nothing inline, nothing from elsewhere.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    # xterm.js (the terminal) builds <style> elements for its cell geometry and theme;
    # pages with a terminal hand it a per-response nonce for them. The nonce appears
    # only on responses that used it; scripts stay 'self' only.
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Where Daytona is. By default the embedded engine that `make run` starts.
ENGINE_HOST = env_str("SANDBAR_ENGINE_HOST", "127.0.0.1")
ENGINE_PORT = env_int("SANDBAR_ENGINE_PORT", 8400, minimum=1, maximum=65535)
DAYTONA_API_URL = env_url("DAYTONA_API_URL", f"http://{ENGINE_HOST}:{ENGINE_PORT}/api")
DAYTONA_API_KEY = env_str("DAYTONA_API_KEY", "")
# Without DAYTONA_API_KEY, the key the embedded engine wrote on its first run.
DAYTONA_API_KEY_FILE = DATA_DIR / "engine" / "api-key"
DAYTONA_TIMEOUT = env_int("DAYTONA_TIMEOUT_SECONDS", 10, minimum=1, maximum=300)
DAYTONA_ORGANIZATION_NAME = env_str("SANDBAR_ORGANIZATION_NAME", "Local engine")
# Fernet keys sealing the secrets of connections added in the dashboard, newest first
# (dashboard/connections/vault.py); unset, one derived from SECRET_KEY.
SANDBAR_SECRET_KEYS = env_list("SANDBAR_SECRET_KEYS", [])

# One line per record; with SANDBAR_LOG_FORMAT=json, one JSON object per line. Each
# carries the id of the request it belongs to (dashboard/core/logs.py), and known
# secrets (the Daytona key, SECRET_KEY, bearer tokens) are masked before it is written.
LOG_FORMAT = env_str("SANDBAR_LOG_FORMAT", "text").lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"SANDBAR_LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "dashboard.core.logs.RequestContext"},
        "secrets": {"()": "dashboard.core.logs.MaskSecrets"},
        "readiness": {"()": "dashboard.core.logs.ReadinessIsNotAnError"},
    },
    "formatters": {
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s",
        },
        "json": {"()": "dashboard.core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "django.request": {"filters": ["readiness"]},
        # The ASGI server's own lines (start, stop, access) in the same format.
        **{
            name: {"handlers": ["console"], "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    },
}

if not DEBUG and SECRET_KEY.startswith("django-insecure"):
    raise ImproperlyConfigured("SECRET_KEY must not be a django-insecure development key")

AUTHENTICATION_BACKENDS = ["dashboard.accounts.backends.SignInBackend"]
CSRF_FAILURE_VIEW = "dashboard.core.views.csrf_failure"
