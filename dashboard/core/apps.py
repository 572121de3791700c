from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "dashboard.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from dashboard.core import files

        files.check_at_start()
