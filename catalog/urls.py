from django.urls import path, re_path

from . import views

app_name = "catalog"
urlpatterns = [
    path("", views.finding_list, name="finding_list"),
    path("bulk/", views.finding_bulk, name="finding_bulk"),
    re_path(r"^export\.(?P<fmt>csv|json)$", views.export_findings, name="export_findings"),
    path("import/", views.import_findings, name="import_findings"),
    path("findings/new/", views.finding_create, name="finding_create"),
    path("slice-text/", views.slice_text, name="slice_text"),
    path("findings/<int:pk>/", views.finding_detail, name="finding_detail"),
    path("findings/<int:pk>/edit/", views.finding_edit, name="finding_edit"),
    path("findings/<int:pk>/transition/", views.finding_transition, name="finding_transition"),
    path("findings/<int:pk>/key-lesson/", views.finding_key_lesson, name="finding_key_lesson"),
]
