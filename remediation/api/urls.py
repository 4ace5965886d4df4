from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("actions", views.ActionViewSet)
router.register("evaluations", views.EvaluationViewSet)
router.register("audit-events", views.AuditEventViewSet)
router.register("notifications", views.NotificationViewSet, basename="notification")
router.register("model-versions", views.VersionGateViewSet, basename="modelversion-gate")
urlpatterns = router.urls
