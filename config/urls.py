from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ledger import views as ledger_views

from .auth import login_view, throttled_login
from .health import healthz


class FaviconView(RedirectView):
    """/favicon.ico, which browsers and feed readers ask for by habit: the site's icon."""

    http_method_names = ["get", "head"]

    def get_redirect_url(self, *args, **kwargs):
        return static("favicon.svg")


api_v1 = [
    path("", include("registry.api.urls")),
    path("", include("catalog.api.urls")),
    path("", include("probes.api.urls")),
    path("", include("remediation.api.urls")),
    path("", include("introspection.api.urls")),
    path("", include("ledger.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", ledger_views.dashboard, name="dashboard"),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("login/", login_view, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("ledger.urls")),
    path("catalog/", include("catalog.urls")),
    path("", include("registry.urls")),
    path("", include("probes.urls")),
    path("", include("remediation.urls")),
    path("", include("introspection.urls")),
    path("api/v1/", include(api_v1)),
    path("admin/login/", throttled_login(admin.site.login)),
    path("admin/", admin.site.urls),
]
