from django.conf import settings

# Pages use only same-origin scripts, styles and images (plain CSS and a little vendored
# JS, charts as same-origin PNG or inline SVG), so the policy can stay strict.
DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# The interactive API docs (Swagger UI from the sidecar package) need inline bootstrapping.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = getattr(settings, "CONTENT_SECURITY_POLICY", DEFAULT_CSP)

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            relaxed = request.path.startswith(("/api/v1/docs", "/admin/"))
            response["Content-Security-Policy"] = DOCS_CSP if relaxed else self.policy
        return response


class RequestSizeLimitMiddleware:
    """Refuse a request body over the limit before anything reads it, with 413 and a
    message that gives both sizes (JSON under /api/, a short page elsewhere).

    Uploads (multipart) may be as large as UPLOAD_MAX_BYTES plus room for the other form
    fields; any other body (JSON, forms) as large as DATA_UPLOAD_MAX_MEMORY_SIZE. Django
    checks the latter only when a view reads request.POST or request.body, and a parser
    that reads the stream itself would never see it.
    """

    FORM_FIELDS_ALLOWANCE = 1024 * 1024

    def __init__(self, get_response):
        self.get_response = get_response

    def limit_for(self, request):
        if request.content_type == "multipart/form-data":
            return settings.UPLOAD_MAX_BYTES + self.FORM_FIELDS_ALLOWANCE
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def __call__(self, request):
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return self.refuse(request, 400, f"Content-Length {raw[:40]!r} is not a number.")
        limit = self.limit_for(request)
        if limit is not None and length > limit:
            return self.refuse(
                request, 413, f"The request body is {length} bytes; the limit is {limit} bytes."
            )
        return self.get_response(request)

    def refuse(self, request, status, message):
        from django.http import HttpResponse, JsonResponse

        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message}, status=status)
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
