from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "dashboard.connections"

    def ready(self) -> None:
        from dashboard.connections import pools, vault  # pools: closes a deleted one's pool
        from dashboard.core import health

        health.register_connections(pools.readiness_targets)
        # A malformed SANDBAR_SECRET_KEYS stops the process at start, not at the first
        # page that opens a secret.
        vault.keys()
