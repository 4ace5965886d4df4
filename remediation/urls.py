from django.urls import path

from . import views

app_name = "remediation"
urlpatterns = [
    path("findings/<int:finding_pk>/actions/new/", views.action_create, name="action_create"),
    path("actions/<int:pk>/edit/", views.action_edit, name="action_edit"),
    path("actions/<int:pk>/transition/", views.action_transition, name="action_transition"),
    path("actions/<int:pk>/evaluations/new/", views.evaluation_create, name="evaluation_create"),
    path("review/", views.board, name="board"),
    path("review/pack/", views.review_pack, name="review_pack"),
    path("review/effectiveness/", views.effectiveness, name="effectiveness"),
    path("audit/", views.audit_log, name="audit_log"),
    path("notifications/", views.notifications, name="notifications"),
    path("findings/<int:finding_pk>/evidence-pack.zip", views.evidence_pack, name="evidence_pack"),
]
