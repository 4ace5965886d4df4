"""gunicorn configuration for Boundary Ledger's web machines.

    gunicorn -c deploy/gunicorn.conf.py config.wsgi

Every value can be overridden from the environment (see deploy/boundary-ledger.env).
Threads keep connections alive and overlap database waits; each worker process holds one
database connection per thread (CONN_MAX_AGE keeps them, health-checked before use).
"""

import gc
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# Uploads of datasets and artifacts can take a while on a slow link; a stuck worker is
# replaced after this many seconds.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 120))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so that a slow leak never grows without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 2000))
max_requests_jitter = 200
# The app is imported once, then forked: faster start, shared memory pages.
preload_app = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proxy_allow_ips = forwarded_allow_ips


def pre_fork(server, worker):
    """Before each worker is forked from the loaded app: move every object the master
    holds (Django, the URL and template machinery, the models) out of the garbage
    collector's reach. The workers then never scan them in a collection and never write
    to their pages (copy-on-write stays shared); a request's own garbage is collected
    as before."""
    gc.freeze()
