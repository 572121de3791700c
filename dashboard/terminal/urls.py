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
