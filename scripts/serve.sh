#!/usr/bin/env bash
# Serve the app and a django-q2 worker together; Ctrl-C (or TERM) stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# Where to listen (`make run PORT=8001`); the app reads them too, for the links it sends.
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export HOST PORT
# The address to open: a server listening on every interface is reachable here too.
case "$HOST" in
  0.0.0.0 | :: | "[::]") here=127.0.0.1 ;;
  *:*) here="[${HOST#[}"; here="${here%]}]" ;;
  *) here=$HOST ;;
esac
url="http://$here:$PORT/"

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

echo "Starting the worker (manage.py qcluster)..."
"$PY" manage.py qcluster &
pids+=($!)
echo "Starting the web server on $HOST:$PORT..."
"$PY" manage.py runserver "$HOST:$PORT" --noreload &
web=$!
pids+=("$web")
# Say where it serves once it answers there, not before: a port already in use ends the
# web server, and with it this script, with runserver's own message.
(
  for _ in $(seq 600); do
    kill -0 "$web" 2>/dev/null || exit 0
    if "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "${url}healthz" 2>/dev/null; then
      echo
      echo "Boundary Ledger is serving on $url  (Ctrl-C stops the web server and the worker)"
      [ -n "${SITE_URL:-}" ] && echo "Links in notifications and e-mails point to $SITE_URL"
      exit 0
    fi
    sleep 0.5
  done
  echo "The web server did not answer at ${url}healthz within 5 minutes." >&2
) &
# Whichever stops first (or a signal) ends the session and takes the other one along.
wait -n "${pids[@]}" || true
