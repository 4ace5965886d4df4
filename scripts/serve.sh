#!/usr/bin/env bash
# Serve the app and a django-q2 worker together; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}

"$PY" manage.py qcluster &
worker=$!
stop() {
  trap - INT TERM EXIT
  kill -TERM "$worker" 2>/dev/null || true
  wait "$worker" 2>/dev/null || true
}
trap stop INT TERM EXIT
echo "Boundary Ledger: http://$HOST:$PORT/  (worker pid $worker; Ctrl-C stops both)"
"$PY" manage.py runserver "$HOST:$PORT" --noreload
