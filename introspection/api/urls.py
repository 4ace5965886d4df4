from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("scans", views.ScanViewSet)
router.register("scan-dismissals", views.ScanDismissalViewSet)
router.register("model-versions", views.VersionScanViewSet, basename="modelversion-scan")
urlpatterns = router.urls
