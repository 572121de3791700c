from django.urls import path

from dashboard.snapshots import views

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
