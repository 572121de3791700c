from django.urls import path, register_converter

from dashboard.volumes import views


class VolumeIdConverter:
    """A volume id (Daytona's are UUIDs); nothing that could break a URL."""

    regex = r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(VolumeIdConverter, "volume")

urlpatterns = [
    path("", views.volume_list, name="volumes"),
    path("new/", views.create, name="volume_create"),
    path("bulk/", views.bulk, name="volumes_bulk"),
    path("<volume:volume_id>/delete/", views.delete, name="volume_delete"),
]
