from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse

from core import hygiene

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
        return refuse(request, status, message)


def refuse(request, status, message, field=None):
    """A refusal before any view ran: JSON under /api/ ({field or "detail": ...}), a short
    plain-text page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({field or "detail": [message] if field else message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class InputHygieneMiddleware:
    """Query parameters, form fields and the path's numbers pass core/hygiene.py's rules
    before any view sees them: a NUL character or an integer beyond 64 bits is refused
    with 400 naming the parameter (JSON under /api/, a short page elsewhere), never a
    server error from the database; a form field that carries JSON (a slice, parameters,
    evidence) follows the JSON rules too. JSON bodies are checked by the API's parser.
    A view that reads an input through core/hygiene.py (an id with `parse_id`, a CSV with
    `check_csv`) and is refused gets the same 400."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for segment in request.path.split("/"):
            try:
                hygiene.check_integer_text(segment)
            except hygiene.InputError:
                if request.path.startswith("/api/"):
                    return JsonResponse({"detail": "No such object."}, status=404)
                raise Http404("No such object.") from None
        try:
            self.check(request.GET, "query parameter")
            if request.method == "POST" and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                self.check(request.POST, "form field")
        except hygiene.InputError as exc:
            return self.refuse(request, exc)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, hygiene.InputError):
            return self.refuse(request, exception)
        return None

    @staticmethod
    def refuse(request, exc):
        api = request.path.startswith("/api/")
        return refuse(request, 400, exc.message if api else str(exc), field=exc.where or None)

    @staticmethod
    def check(data, kind):
        for key, values in data.lists():
            hygiene.check_text(key, f"{kind} name")
            for value in values:
                if isinstance(value, str):
                    hygiene.check_text(value, key)
                    hygiene.check_integer_text(value, key)
                    if kind == "form field":
                        hygiene.check_embedded_json(value, key)
