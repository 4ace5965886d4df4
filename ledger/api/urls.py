from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("findings", views.FindingSuggestionsViewSet, basename="finding-suggestions")
urlpatterns = router.urls
