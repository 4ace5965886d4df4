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
# Each of the two runs in a session of its own (where `setsid` exists), so that stopping it
# reaches every process it started, including one forked while it was being stopped.
detach=()
command -v setsid >/dev/null 2>&1 && detach=(setsid)
# KILL to each of the two and to every process of its session.
end_all() {
  local pid
  for pid in "${pids[@]}"; do
    if [ ${#detach[@]} -gt 0 ]; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    kill -KILL "$pid" 2>/dev/null || true
  done
}
running() {
  local pid
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && return 0
    [ ${#detach[@]} -gt 0 ] && kill -0 -- "-$pid" 2>/dev/null && return 0
  done
  return 1
}
stop() {
  trap - INT TERM HUP EXIT
  # TERM to the two alone (the worker cluster stops its own processes, letting a task in
  # progress finish); INT would not do: children started in the background ignore it.
  kill -TERM "${pids[@]}" 2>/dev/null || true
  # A cluster told to stop while it is still starting can miss it: wait for a clean stop
  # (STOP_GRACE seconds), then end whatever is left, so that Ctrl-C always ends everything.
  local waited=0
  while running && [ "$waited" -lt "${STOP_GRACE:-20}" ]; do
    sleep 1; waited=$((waited + 1))
  done
  if running; then
    echo "The web server or the worker did not stop within ${STOP_GRACE:-20}s; ending them." >&2
    end_all
  fi
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM HUP EXIT

echo "Starting the worker (manage.py qcluster)..."
"${detach[@]}" "$PY" manage.py qcluster &
pids+=($!)
echo "Starting the web server on $HOST:$PORT..."
"${detach[@]}" "$PY" manage.py runserver "$HOST:$PORT" --noreload &
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
# Whichever stops first (or a signal) ends the session and takes the other one along. The
# wait is a second at a time: a signal that reaches bash while it is reaping another child
# (the announcer above) can be left pending until the wait it arrived in returns, so that
# wait must return; the trap runs as soon as it does.
while kill -0 "${pids[0]}" 2>/dev/null && kill -0 "$web" 2>/dev/null; do
  sleep 1 &
  wait "$!" || true
done
