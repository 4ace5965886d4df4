from django.urls import path

from . import views

app_name = "probes"
urlpatterns = [
    path("versions/<int:pk>/run/", views.version_run, name="version_run"),
    path("findings/<int:finding_pk>/probes/new/", views.probe_create, name="probe_create"),
    path("findings/<int:finding_pk>/probes/run/", views.finding_run, name="finding_run"),
    path("probes/<int:pk>/", views.probe_detail, name="probe_detail"),
    path("probes/<int:pk>/revise/", views.probe_revise, name="probe_revise"),
    path("probes/<int:pk>/retire/", views.probe_retire, name="probe_retire"),
    path("reruns/<int:pk>/progress.json", views.rerun_progress, name="rerun_progress"),
]
