from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "dashboard.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from dashboard.accounts import liveness, sessions

        liveness.connect_signals()
        sessions.connect_signals()
