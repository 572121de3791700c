"""Counting failed sign-ins, per client address and per account name.

Failures are counted in the cache (shared between workers when REDIS_URL is
set); a success clears the account's count. Only failures count, so a team
behind one NAT address is not locked out by its own successful sign-ins.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache


def _keys(client_ip: str, username: str) -> list[str]:
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"signin-fail:ip:{client_ip}", f"signin-fail:user:{name}"]


def is_limited(client_ip: str, username: str) -> bool:
    """Whether this address or this account has used up its failed attempts."""
    counts = cache.get_many(_keys(client_ip, username))
    return any(count >= settings.LOGIN_ATTEMPTS_LIMIT for count in counts.values())


def record_failure(client_ip: str, username: str) -> None:
    for key in _keys(client_ip, username):
        # add() starts the window only once; incr() keeps its expiry.
        if not cache.add(key, 1, timeout=settings.LOGIN_ATTEMPTS_WINDOW):
            try:
                cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.add(key, 1, timeout=settings.LOGIN_ATTEMPTS_WINDOW)


def clear(client_ip: str, username: str) -> None:
    cache.delete(_keys(client_ip, username)[1])
