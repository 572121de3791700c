from django.urls import path

from dashboard.terminal import files, views

urlpatterns = [
    path("<sandbox:sandbox_id>/terminal/", views.terminal_page, name="terminal"),
    path("<sandbox:sandbox_id>/terminals/", views.shells, name="terminal_shells"),
    path(
        "<sandbox:sandbox_id>/terminals/<slug:session>/close/",
        views.close_shell,
        name="terminal_close",
    ),
    path(
        "<sandbox:sandbox_id>/terminals/<slug:session>/leave/",
        views.leave_shell,
        name="terminal_leave",
    ),
    path(
        "<sandbox:sandbox_id>/terminals/close-mine/", views.close_mine, name="terminal_close_mine"
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

urlpatterns += [
    path("<sandbox:sandbox_id>/files/", files.browse, name="files"),
    path("<sandbox:sandbox_id>/files/download/", files.download, name="files_download"),
    path("<sandbox:sandbox_id>/files/upload/", files.upload, name="files_upload"),
    path("<sandbox:sandbox_id>/files/folder/", files.make_folder, name="files_folder"),
    path("<sandbox:sandbox_id>/files/delete/", files.delete, name="files_delete"),
    path("<sandbox:sandbox_id>/files/move/", files.move, name="files_move"),
]
