from django.urls import path

from dashboard.audit import views

urlpatterns = [
    path("", views.audit_log, name="audit"),
    path("new/", views.audit_new, name="audit_new"),
    path("export/", views.audit_export, name="audit_export"),
    path("check/", views.audit_check, name="audit_check"),
    path("<int:seq>/", views.audit_entry, name="audit_entry"),
]
