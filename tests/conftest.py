import pytest
from django.conf import settings

from dashboard.accounts.models import Role, User
from tests.engine_server import *  # noqa: F403
from tests.served_client import ServedClient

PASSWORD = "a-long-test-password-1"
ROLES = [Role.ADMIN, Role.MEMBER, Role.VIEWER]


def pytest_configure(config) -> None:
    # Tests serve static files from the source tree; no collectstatic manifest needed.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.SERVESTATIC_USE_FINDERS = True
    settings.SERVESTATIC_AUTOREFRESH = True
    # The real hasher is slow on purpose; tests sign in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The sign-in rate limiter counts in the cache: no test may inherit another's count.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def make_user(username: str, role: str, **fields) -> User:
    return User.objects.create_user(username=username, password=PASSWORD, role=role, **fields)


@pytest.fixture
def admin_user(db) -> User:
    return make_user("ada", Role.ADMIN, first_name="Ada", last_name="Admin")


@pytest.fixture
def member_user(db) -> User:
    return make_user("mel", Role.MEMBER)


@pytest.fixture
def other_member(db) -> User:
    return make_user("max", Role.MEMBER)


@pytest.fixture
def viewer_user(db) -> User:
    return make_user("vic", Role.VIEWER)


@pytest.fixture
def users(admin_user, member_user, viewer_user) -> dict[str, User]:
    return {Role.ADMIN: admin_user, Role.MEMBER: member_user, Role.VIEWER: viewer_user}


@pytest.fixture
def client() -> ServedClient:
    """pytest-django's `client`, served through the ASGI path as in production."""
    return ServedClient()


def client_for(user: User | None) -> ServedClient:
    client = ServedClient()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def admin_client(admin_user) -> ServedClient:
    return client_for(admin_user)


@pytest.fixture
def member_client(member_user) -> ServedClient:
    return client_for(member_user)


@pytest.fixture
def viewer_client(viewer_user) -> ServedClient:
    return client_for(viewer_user)


@pytest.fixture
def daytona_engine(engine, settings):
    """Point the dashboard's Daytona client at the session's real engine."""
    settings.DAYTONA_API_URL = engine.api_url
    settings.DAYTONA_API_KEY = engine.api_key
    return engine
