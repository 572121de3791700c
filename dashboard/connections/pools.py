"""A deleted connection's pooled HTTP client is closed: in the worker that deleted it at
once (after the delete commits), in the others at their next look-up of connections
(the usage sampler's round, /readyz, or a person whose chosen connection is gone).

Each worker keeps one pooled client per connection it has called (dashboard/daytona/
client.py), holding sockets to that Daytona open; nothing else would ever close it.
"""

from collections.abc import Iterable

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from dashboard.connections import active
from dashboard.connections.models import DEFAULT_NAME, Connection
from dashboard.daytona import client

pool_name = active.pool_name


def retire(pks: Iterable[int]) -> None:
    """Close the pools of these (deleted) connections, and forget their opened secrets."""
    names = set(client.pool_names())
    for pk in pks:
        if pool_name(pk) in names:
            client.retire_pool(pool_name(pk))
    # Entries are per row version: a deleted row's opened secret would stay until evicted.
    active.forget_targets()


def prune(existing: Iterable[int]) -> None:
    """Close the pools of connections not among `existing` (deleted by another worker)."""
    keep = {pool_name(pk) for pk in existing}
    ours = [name for name in client.pool_names() if name.startswith(active.POOL_PREFIX)]
    missing = [name for name in ours if name not in keep]
    # `existing` was read before the pools were listed: a connection added in between
    # has a pool but no place in it. Only a read taken after the listing says it is gone.
    gone = set(missing) - _stored(missing)
    for name in gone:
        client.retire_pool(name)
    if gone:
        active.forget_targets()


def _stored(names: list[str]) -> set[str]:
    """Those of these pools whose connection is in the table now."""
    if not names:
        return set()
    suffixes = (name.removeprefix(active.POOL_PREFIX) for name in names)
    pks = [int(suffix) for suffix in suffixes if suffix.isdigit()]
    rows = Connection.objects.filter(pk__in=pks).values_list("pk", flat=True)
    return {pool_name(pk) for pk in rows}


@receiver(post_delete, sender=Connection, dispatch_uid="connections.pools.retire")
def _deleted(sender: type[Connection], instance: Connection, **kwargs: object) -> None:
    pk = instance.pk
    transaction.on_commit(lambda: retire([pk]))


def readiness_targets() -> list[tuple[str, client.Target | None]]:
    """What /readyz asks: the Default and each stored connection, by name. A look-up:
    the pools of connections gone meanwhile are closed."""
    rows = list(Connection.objects.all())
    prune(row.pk for row in rows)
    return [(DEFAULT_NAME, None), *((row.name, active.target_of(row)) for row in rows)]
