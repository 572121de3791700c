from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "dashboard.connections"

    def ready(self) -> None:
        # pools: its signal receiver closes a deleted connection's pooled client.
        from dashboard.connections import pools, vault  # noqa: F401

        # A malformed SANDBAR_SECRET_KEYS stops the process at start, not at the first
        # page that opens a secret.
        vault.keys()
