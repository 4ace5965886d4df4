from django.urls import path

from . import views

app_name = "probes"
urlpatterns = [
    path("models/", views.mlmodel_list, name="mlmodel_list"),
    path("models/new/", views.mlmodel_create, name="mlmodel_create"),
    path("models/<slug:slug>/", views.mlmodel_detail, name="mlmodel_detail"),
    path("models/<slug:slug>/versions/new/", views.version_register, name="version_register"),
    path("versions/<int:pk>/", views.version_detail, name="version_detail"),
    path("versions/<int:pk>/run/", views.version_run, name="version_run"),
    path("findings/<int:finding_pk>/probes/new/", views.probe_create, name="probe_create"),
    path("findings/<int:finding_pk>/probes/run/", views.finding_run, name="finding_run"),
    path("reruns/<int:pk>/progress.json", views.rerun_progress, name="rerun_progress"),
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/new/", views.dataset_upload, name="dataset_upload"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<int:pk>/columns.json", views.dataset_columns, name="dataset_columns"),
    # Offline introspection.
    path("versions/<int:pk>/scan/", views.scan_new, name="scan_new"),
    path("scans/<int:pk>/", views.scan_detail, name="scan_detail"),
    path("scans/<int:pk>/progress.json", views.scan_progress, name="scan_progress"),
    path("scans/<int:pk>/candidates/<int:index>/log/", views.scan_log, name="scan_log"),
    path("findings/<int:finding_pk>/maps/", views.finding_maps_request, name="finding_maps"),
    path("findings/<int:finding_pk>/sweeps/", views.sweep_request, name="finding_sweeps"),
    path("findings/<int:finding_pk>/introspection.json", views.finding_introspection_progress,
         name="finding_introspection_progress"),
    path("maps/<int:pk>.png", views.map_image, name="map_image"),
    path("sweeps/<int:pk>/points/<int:index>/probe/", views.sweep_point_probe,
         name="sweep_point_probe"),
    path("datasets/<int:pk>/sensitive/", views.dataset_sensitive, name="dataset_sensitive"),
]
