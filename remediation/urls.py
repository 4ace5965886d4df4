from django.urls import path

from . import views

app_name = "remediation"
urlpatterns = [
    path("findings/<int:finding_pk>/actions/new/", views.action_create, name="action_create"),
    path("actions/<int:pk>/transition/", views.action_transition, name="action_transition"),
]
