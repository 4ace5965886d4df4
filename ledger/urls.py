from django.urls import path

from . import views

app_name = "ledger"
urlpatterns = [
    path("catalog/start/", views.start_here, name="start_here"),
    path("catalog/heatmap/", views.heatmap, name="heatmap"),
    path("versions/compare/", views.version_compare, name="version_compare"),
    path("catalog/backup/export/", views.export_catalog, name="export_catalog"),
    path("catalog/backup/import/", views.import_catalog, name="import_catalog"),
]
