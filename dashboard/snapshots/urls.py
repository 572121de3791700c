from django.urls import path, register_converter

from dashboard.snapshots import views


class SnapshotIdConverter:
    """A snapshot id (Daytona's are UUIDs); nothing that could break a URL."""

    regex = r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SnapshotIdConverter, "snapshot")

urlpatterns = [
    path("", views.snapshot_list, name="snapshots"),
    path("new/", views.create, name="snapshot_create"),
    path("bulk/", views.bulk, name="snapshots_bulk"),
    path("<snapshot:snapshot_id>/", views.snapshot_detail, name="snapshot"),
    path("<snapshot:snapshot_id>/log/", views.snapshot_log, name="snapshot_log"),
    path(
        "<snapshot:snapshot_id>/log/download/",
        views.snapshot_log_download,
        name="snapshot_log_download",
    ),
    # One URL name per verb, so each is its own row in the authorization table.
    *(
        path(
            f"<snapshot:snapshot_id>/{verb}/",
            views.snapshot_action,
            {"verb": verb},
            name=f"snapshot_{verb}",
        )
        for verb in ("activate", "deactivate", "delete")
    ),
]
