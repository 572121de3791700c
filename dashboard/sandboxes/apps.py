from django.apps import AppConfig


class SandboxesConfig(AppConfig):
    name = "dashboard.sandboxes"
    label = "sandboxes"
