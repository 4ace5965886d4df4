from django.urls import path

from . import views

app_name = "catalog"
urlpatterns = [
    path("", views.finding_list, name="finding_list"),
    path("findings/new/", views.finding_create, name="finding_create"),
    path("findings/<int:pk>/", views.finding_detail, name="finding_detail"),
    path("findings/<int:pk>/edit/", views.finding_edit, name="finding_edit"),
    path("findings/<int:pk>/transition/", views.finding_transition, name="finding_transition"),
]
