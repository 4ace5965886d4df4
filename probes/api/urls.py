from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("ml-models", views.MLModelViewSet)
router.register("datasets", views.DatasetViewSet)
router.register("model-versions", views.ModelVersionViewSet)
router.register("probes", views.ProbeViewSet)
router.register("probe-runs", views.ProbeRunViewSet)
router.register("reruns", views.RerunViewSet)
router.register("scans", views.ScanViewSet)
urlpatterns = router.urls
