from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("probes", views.ProbeViewSet)
router.register("probe-runs", views.ProbeRunViewSet)
router.register("reruns", views.RerunViewSet)
router.register("model-versions", views.VersionRunViewSet, basename="modelversion-run")
urlpatterns = router.urls
