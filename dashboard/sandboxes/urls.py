from django.urls import path

from dashboard.sandboxes import metrics, saved, usage, views

urlpatterns = [
    path("", views.sandbox_list, name="sandboxes"),
    path("new/", views.create, name="sandbox_create"),
    path("bulk/", views.bulk, name="sandboxes_bulk"),
    path("bulk/item/", views.bulk_item, name="sandboxes_bulk_item"),
    path("views/", saved.save_view, name="sandbox_view_save"),
    path("views/<int:pk>/", saved.apply_view, name="sandbox_view"),
    path("views/<int:pk>/delete/", saved.delete_view, name="sandbox_view_delete"),
    path("<sandbox:sandbox_id>/", views.sandbox_detail, name="sandbox"),
    path("<sandbox:sandbox_id>/<verb:verb>/", views.sandbox_action, name="sandbox_action"),
    path("<sandbox:sandbox_id>/labels/", views.edit_labels, name="sandbox_labels"),
    path("<sandbox:sandbox_id>/lifecycle/", views.edit_lifecycle, name="sandbox_lifecycle"),
    path("<sandbox:sandbox_id>/network/", views.edit_network, name="sandbox_network"),
    path("<sandbox:sandbox_id>/resources/", views.edit_resources, name="sandbox_resources"),
    path("<sandbox:sandbox_id>/usage/", usage.sandbox_usage, name="sandbox_usage"),
    path("<sandbox:sandbox_id>/metrics/", metrics.sandbox_metrics, name="sandbox_metrics"),
]
