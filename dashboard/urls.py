from django.urls import include, path

from dashboard.core import views as core

urlpatterns = [
    path("", core.home, name="home"),
    path("healthz", core.healthz, name="healthz"),
    path("settings/", core.connection_settings, name="settings"),
    path("sandboxes/", include("dashboard.sandboxes.urls")),
    path("sandboxes/", include("dashboard.terminal.urls")),
    path("snapshots/", core.area_pending, {"area": "Snapshots"}, name="snapshots"),
    path("volumes/", core.area_pending, {"area": "Volumes"}, name="volumes"),
    path("limits/", core.area_pending, {"area": "Limits"}, name="limits"),
    path("audit/", include("dashboard.audit.urls")),
    path("", include("dashboard.accounts.urls")),
]
