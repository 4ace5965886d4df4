#!/usr/bin/env bash
# Serve the app and a django-q2 worker together; Ctrl-C (or TERM) stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}

pids=()
stop() {
  trap - INT TERM EXIT
  # TERM, not INT: children started in the background of a script ignore SIGINT.
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

"$PY" manage.py qcluster &
pids+=($!)
"$PY" manage.py runserver "$HOST:$PORT" --noreload &
pids+=($!)
echo "Boundary Ledger: http://$HOST:$PORT/  (Ctrl-C stops the web server and the worker)"
# Whichever stops first (or a signal) ends the session and takes the other one along.
wait -n "${pids[@]}" || true
