from django.urls import include, path, register_converter

from dashboard.accounts import views as accounts
from dashboard.audit import views as audit
from dashboard.connections import views as connections
from dashboard.core import health
from dashboard.core import views as core
from dashboard.core.converters import DaytonaIdConverter, SandboxVerbConverter

# Here, before `include` reads the areas' URLconfs, which use these names.
register_converter(DaytonaIdConverter, "sandbox")
register_converter(DaytonaIdConverter, "snapshot")
register_converter(DaytonaIdConverter, "volume")
register_converter(SandboxVerbConverter, "verb")

urlpatterns = [
    path("", core.home, name="home"),
    path("healthz", core.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("settings/", accounts.connection_settings, name="settings"),
    path("settings/connections/", include("dashboard.connections.urls")),
    path("connections/switch/", connections.switch, name="connection_switch"),
    path("connections/menu/", connections.menu, name="connection_menu"),
    path("sandboxes/", include("dashboard.sandboxes.urls")),
    path("sandboxes/", include("dashboard.terminal.urls")),
    path("snapshots/", include("dashboard.snapshots.urls")),
    path("volumes/", include("dashboard.volumes.urls")),
    path("limits/", include("dashboard.limits.urls")),
    path("audit/daytona/", audit.daytona_audit_log, name="audit_daytona"),
    path("audit/", include("dashboard.audit.urls")),
    path("", include("dashboard.accounts.urls")),
]
