"""Boundary Ledger settings.

Everything that differs between a laptop and production comes from environment variables,
read through the tiny helpers below; the defaults are safe for local use (SQLite under
var/, the django-q2 ORM broker, e-mail printed to the console).
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def envbool(name, default="0"):
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name, default):
    return int(os.environ.get(name, default))


def envlist(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def database_from_url(url):
    """Turn a DATABASE_URL (postgres://user:pass@host:port/name or sqlite:///path) into
    a Django DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme in ("postgres", "postgresql", "pgsql"):
        options = dict(parse_qsl(parsed.query))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
            # Keep connections across requests, but check them before use so that a
            # restarted PostgreSQL costs one failed health check, not an error page.
            "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
        }
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if path.startswith("//"):
            path = path[1:]
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path.lstrip("/") if not path.startswith("/") else path,
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    raise ImproperlyConfigured(f"DATABASE_URL has an unsupported scheme: {parsed.scheme!r}")


# Only for local use: with DEBUG off the app refuses to start on it (below).
DEFAULT_SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY") or DEFAULT_SECRET_KEY
DEBUG = envbool("DEBUG", "1")
if not DEBUG and SECRET_KEY == DEFAULT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DEBUG is off but SECRET_KEY is the local default: set SECRET_KEY to a long random value."
    )

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
# Where `make run` (scripts/serve.sh) serves: HOST and PORT, 127.0.0.1:8000 by default.
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = envint("PORT", 8000)


def served_url(host, port):
    """The address a person reaches the server at when it listens on host:port."""
    # Listening on every interface: this machine is one of them.
    if host in ("0.0.0.0", "::", "[::]", ""):  # noqa: S104 (compared, not bound)
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


# The site's own address, for the links in e-mails, webhooks and exports (which leave the
# browser); by default the address served. Behind a proxy, set it to the public address.
SITE_URL = os.environ.get("SITE_URL") or served_url(HOST, PORT)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    # Lowest layer first: each app imports only the apps above it in this list.
    "core",
    "registry",
    "catalog",
    "probes",
    "remediation",
    "introspection",
    "ledger",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.RequestSizeLimitMiddleware",
    "config.middleware.InputHygieneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "core.audit.AuditActorMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.roles",
            ],
        },
    },
]

if not os.environ.get("DATABASE_URL"):
    VAR_DIR.mkdir(exist_ok=True)  # the local SQLite database lives there
DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'boundary-ledger.sqlite3'}"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# A user's permissions and groups are read in one query per request (config/auth_backends.py);
# signing in, and the backend sessions record, stay with ModelBackend.
AUTHENTICATION_BACKENDS = [
    "config.auth_backends.PermissionsInOneQuery",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
# The hour (in TIME_ZONE) of the nightly rerun of each ML model's latest version.
NIGHTLY_RERUN_HOUR = envint("NIGHTLY_RERUN_HOUR", 2)
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"

# Uploads: datasets and model artifacts are checked by content and stored under
# server-generated names; anything over the limit is refused before it is read.
UPLOAD_MAX_BYTES = envint("UPLOAD_MAX_BYTES", 200 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# A dataset's rows and cells (rows x columns) are bounded too: a small compressed file can
# decode to a table far larger than itself (checked from Parquet metadata before decoding).
DATASET_MAX_ROWS = envint("DATASET_MAX_ROWS", 2_000_000)
DATASET_MAX_CELLS = envint("DATASET_MAX_CELLS", 50_000_000)

# Model artifacts are code: plain pickle/joblib is refused unless the deployment opts in,
# and then only for maintainers. The skops allow-list can be extended by name.
ALLOW_PICKLE_ARTIFACTS = envbool("ALLOW_PICKLE_ARTIFACTS", "0")
SKOPS_EXTRA_TRUSTED_TYPES = envlist("SKOPS_EXTRA_TRUSTED_TYPES")
# A skops artifact is a zip: one that unpacks to more than this is refused at registration.
ARTIFACT_MAX_UNPACKED_BYTES = envint("ARTIFACT_MAX_UNPACKED_BYTES", 4 * UPLOAD_MAX_BYTES)
# Workers load and run each model in a child process with this much address space at most
# (RLIMIT_AS): a crafted artifact that crashes or exhausts memory fails its runs, not the worker.
ARTIFACT_MEMORY_LIMIT_BYTES = envint("ARTIFACT_MEMORY_LIMIT_BYTES", 4 * 1024**3)

EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if not os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "0")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "boundary-ledger@localhost")

# Outgoing webhooks for regressions: comma-separated URLs, signed with HMAC-SHA256.
WEBHOOK_URLS = envlist("WEBHOOK_URLS")
WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET", "")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so that an anonymous request gets 401 with WWW-Authenticate.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.RolePermissions"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Boundary Ledger API",
    "DESCRIPTION": "Findings, probes, remediation actions and their evaluations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several resources have a `status`, each its own choice set: name each enum after it.
    "ENUM_NAME_OVERRIDES": {
        "FindingStatusEnum": "catalog.choices.FindingStatus",
        "RunStatusEnum": "probes.choices.RunStatus",
        "ActionStatusEnum": "remediation.choices.ActionStatus",
        "JobStatusEnum": "core.jobs.JobStatus",
    },
}

# Background work. TASKS_SYNC runs every task inline (tests, scripts); REDIS_URL switches
# the broker from the database to Redis so that workers on several machines share it.
TASKS_SYNC = envbool("TASKS_SYNC", "0")
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    # The queue's name (and the tasks' signing salt): deployments that share one Redis
    # need different names.
    "name": os.environ.get("Q_NAME", "boundary-ledger"),
    "workers": envint("Q_WORKERS", 2),
    # A probe rerun may take minutes on a large dataset; retry must exceed timeout or a
    # slow task is handed to a second worker while the first still runs it.
    "timeout": envint("Q_TIMEOUT", 600),
    "retry": envint("Q_RETRY", 720),
    "max_attempts": envint("Q_MAX_ATTEMPTS", 3),
    # Tasks a cluster fetches ahead of its free workers: few, so that the clusters of
    # several machines share a rerun's chunks instead of one of them hoarding them.
    "queue_limit": envint("Q_QUEUE_LIMIT", envint("Q_WORKERS", 2)),
    "bulk": 1,
    "catch_up": False,
    "save_limit": 1000,
    "sync": TASKS_SYNC,
    "label": "Background tasks",
}
# A rerun is split into tasks of at most this many probes (one dataset each), so that
# the workers of several machines share it.
RERUN_CHUNK_SIZE = envint("RERUN_CHUNK_SIZE", 50)
# Rows per predict_proba call (boundary/predict.py, where the default's reasons are given):
# a model's working memory grows with the rows of a call, several times their size; every
# row is still predicted once, with the same results. 0 predicts a whole table in one call.
PREDICT_CHUNK_ROWS = envint("PREDICT_CHUNK_ROWS", 20_000)
# A probe or scan result whose slice or grouping involves a sensitive column and covers
# fewer rows than this (none included) is reported as inconclusive with no figures.
SENSITIVE_MIN_ROWS = envint("SENSITIVE_MIN_ROWS", 10)
# The longest an accepted risk may run before the system reopens its finding.
RISK_ACCEPTANCE_MAX_DAYS = envint("RISK_ACCEPTANCE_MAX_DAYS", 180)
# JSON nested deeper than this is refused (core/hygiene.py).
JSON_MAX_DEPTH = envint("JSON_MAX_DEPTH", 32)
# Pages of the findings API each web process keeps until the catalog changes
# (catalog.freshness); 0 keeps none.
LIST_CACHE_PAGES = envint("LIST_CACHE_PAGES", 256)
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# The cache holds the sign-in throttle's counters (config/auth.py). Several web processes
# must share them, so production with REDIS_URL uses Redis; locally, process memory.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "boundary-ledger",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGIN_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)  # per username and address
LOGIN_FAILURE_LIMIT_PER_IP = envint("LOGIN_FAILURE_LIMIT_PER_IP", 50)
LOGIN_FAILURE_WINDOW_S = envint("LOGIN_FAILURE_WINDOW_S", 300)
# Proxies in front of the app that append to X-Forwarded-For (nginx: 1). With 0, the
# sign-in throttle counts by REMOTE_ADDR, which behind a proxy is the proxy for everyone.
TRUSTED_PROXIES = envint("TRUSTED_PROXIES", 0)

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "1")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# A refused or missing page (403, 404) is one line on the console, `403 GET /path user=name:
# Forbidden (Permission denied)`, printed once; errors (5xx) keep their traceback.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"one_line_client_errors": {"()": "config.logging.OneLineClientErrors"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {
            "handlers": ["console"],
            "filters": ["one_line_client_errors"],
            "level": "INFO",
            "propagate": False,
        },
        "django.db.backends": {"level": "INFO"},
    },
}
