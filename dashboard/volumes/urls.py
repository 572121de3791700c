from django.urls import path

from dashboard.volumes import views

urlpatterns = [
    path("", views.volume_list, name="volumes"),
    path("new/", views.create, name="volume_create"),
    path("bulk/", views.bulk, name="volumes_bulk"),
    path("<volume:volume_id>/delete/", views.delete, name="volume_delete"),
]
