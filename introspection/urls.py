from django.urls import path

from . import views

app_name = "introspection"
urlpatterns = [
    path("versions/<int:pk>/scan/", views.scan_new, name="scan_new"),
    path("scans/<int:pk>/", views.scan_detail, name="scan_detail"),
    path("scans/<int:pk>/progress.json", views.scan_progress, name="scan_progress"),
    path("scans/<int:pk>/candidates/<int:index>/log/", views.scan_log, name="scan_log"),
    path(
        "scans/<int:pk>/candidates/<int:index>/dismiss/",
        views.scan_dismiss,
        name="scan_dismiss",
    ),
    path(
        "scans/<int:pk>/dismissals/<int:dismissal_pk>/restore/",
        views.scan_restore,
        name="scan_restore",
    ),
    path("findings/<int:finding_pk>/maps/", views.finding_maps_request, name="finding_maps"),
    path("findings/<int:finding_pk>/sweeps/", views.sweep_request, name="finding_sweeps"),
    path(
        "findings/<int:finding_pk>/introspection.json",
        views.finding_introspection_progress,
        name="finding_introspection_progress",
    ),
    path("maps/<int:pk>.png", views.map_image, name="map_image"),
    path(
        "sweeps/<int:pk>/points/<int:index>/probe/",
        views.sweep_point_probe,
        name="sweep_point_probe",
    ),
    path("datasets/<int:pk>/sensitive/", views.dataset_sensitive, name="dataset_sensitive"),
]
