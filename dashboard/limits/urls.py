from django.urls import path

from dashboard.limits import views

urlpatterns = [
    path("", views.limits, name="limits"),
    path("history/", views.limits_history, name="limits_history"),
]
