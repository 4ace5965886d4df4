#!/usr/bin/env bash
# Serve the app and a django-q2 worker together; Ctrl-C (or TERM) stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}

pids=()
# A process and everything it started (the worker cluster forks a guard and its workers).
tree() { local child; for child in $(pgrep -P "$1"); do tree "$child"; done; echo "$1"; }
stop() {
  trap - INT TERM EXIT
  # TERM, not INT: children started in the background of a script ignore SIGINT.
  kill -TERM "${pids[@]}" 2>/dev/null || true
  # A cluster told to stop while it is still starting can miss it: wait for a clean stop
  # (STOP_GRACE seconds), then end whatever is left, so that Ctrl-C always ends everything.
  local waited=0
  while kill -0 "${pids[@]}" 2>/dev/null && [ "$waited" -lt "${STOP_GRACE:-20}" ]; do
    sleep 1; waited=$((waited + 1))
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "$pid did not stop within ${STOP_GRACE:-20}s; ending it." >&2
      kill -KILL $(tree "$pid") 2>/dev/null || true
    fi
  done
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
