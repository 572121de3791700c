from django.urls import path

from dashboard.connections import views

urlpatterns = [
    path("", views.connection_list, name="connections"),
    path("new/", views.connection_create, name="connection_create"),
    path("<int:pk>/", views.connection_edit, name="connection_edit"),
    path("<int:pk>/delete/", views.connection_delete, name="connection_delete"),
    path("<int:pk>/test/", views.connection_test, name="connection_test"),
]
