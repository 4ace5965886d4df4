from django.urls import path

from . import views

app_name = "registry"
urlpatterns = [
    path("models/", views.mlmodel_list, name="mlmodel_list"),
    path("models/new/", views.mlmodel_create, name="mlmodel_create"),
    path("models/<slug:slug>/", views.mlmodel_detail, name="mlmodel_detail"),
    path("models/<slug:slug>/versions/new/", views.version_register, name="version_register"),
    path("models/<slug:slug>/deployments/new/", views.deployment_create, name="deployment_create"),
    path("versions/<int:pk>/", views.version_detail, name="version_detail"),
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/new/", views.dataset_upload, name="dataset_upload"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<int:pk>/columns.json", views.dataset_columns, name="dataset_columns"),
    path("datasets/<int:pk>/profile/", views.dataset_profile, name="dataset_profile"),
    path("datasets/<int:pk>/drift/", views.dataset_drift, name="dataset_drift"),
]
