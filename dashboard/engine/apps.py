from django.apps import AppConfig


class EngineConfig(AppConfig):
    """Registers the engine only so that ``manage.py engine`` exists; it has no models."""

    name = "dashboard.engine"
    label = "engine"
    verbose_name = "Embedded engine"
