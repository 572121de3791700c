from django.apps import AppConfig


class VolumesConfig(AppConfig):
    name = "dashboard.volumes"
