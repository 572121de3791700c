from django.urls import path

from dashboard.terminal import views

urlpatterns = [
    path("<sandbox:sandbox_id>/terminal/", views.terminal_page, name="terminal"),
    path("<sandbox:sandbox_id>/terminals/", views.shells, name="terminal_shells"),
    path(
        "<sandbox:sandbox_id>/terminals/<slug:session>/close/",
        views.close_shell,
        name="terminal_close",
    ),
]

urlpatterns += [
    path("<sandbox:sandbox_id>/commands/", views.commands, name="terminal_commands"),
    path(
        "<sandbox:sandbox_id>/commands/<str:session>/<str:command>/log/",
        views.download_log,
        name="terminal_log",
    ),
]
