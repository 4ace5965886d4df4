from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("findings", views.FindingViewSet, basename="finding")
router.register("tags", views.TagViewSet)
urlpatterns = router.urls
