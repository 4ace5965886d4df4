from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("ml-models", views.MLModelViewSet)
router.register("datasets", views.DatasetViewSet)
router.register("model-versions", views.ModelVersionViewSet)
router.register("deployments", views.DeploymentViewSet)
urlpatterns = router.urls
