#!/usr/bin/env bash
# Start the action server, the Rasa server and the staff server side by side, say when they
# are ready, and keep running until Ctrl-C, which stops all three.
# Logs: var/log/actions.log, var/log/rasa.log, var/log/staff.log.
# Ports and interfaces come from the settings table (bot/settings.py): ACTION_PORT, RASA_PORT ...
#
# What is reachable (README, "Security"): every server binds loopback by default; Rasa's HTTP API
# is off unless RASA_API_TOKEN is set; the action server answers only the Rasa server (it sends
# ACTION_SECRET); each process is started without the other processes' secrets.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTION_HOST=${ACTION_HOST:-127.0.0.1}
ACTION_PORT=${ACTION_PORT:-5055}
RASA_HOST=${RASA_HOST:-127.0.0.1}
RASA_PORT=${RASA_PORT:-5005}
export ACTION_HOST ACTION_PORT
export ACTION_ENDPOINT_URL=${ACTION_ENDPOINT_URL:-http://$ACTION_HOST:$ACTION_PORT/webhook}
export RASA_TRACKER_DB=${RASA_TRACKER_DB:-var/rasa/tracker.db}
export RASA_LOCK_DB=${RASA_LOCK_DB:-var/rasa/locks.db}
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Errors Sanic answers itself (a body over the size limit: 413) in JSON, like the channels' own.
export SANIC_FALLBACK_ERROR_FORMAT=json

STAFF_HOST=${STAFF_HOST:-127.0.0.1}
STAFF_PORT=${STAFF_PORT:-5056}
export STAFF_HOST STAFF_PORT

# Everything written under var/ (conversations, tickets with phone numbers, secrets, logs) is
# readable by this user only.
umask 077
mkdir -p var && chmod 700 var
mkdir -p var/log "$(dirname "$RASA_TRACKER_DB")" "$(dirname "$RASA_LOCK_DB")"

# A secret kept in var/<file> unless the environment gives one: made once for this machine.
secret() {  # variable, file
  if [ -z "${!1:-}" ]; then
    if [ ! -s "var/$2" ]; then
      .venv/actions/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))' >"var/$2"
    fi
    printf -v "$1" '%s' "$(cat "var/$2")"
  fi
  export "${1?}"
}
# Window staff sign in with a token: STAFF_TOKENS, or one made for this machine in var/staff-token.
if [ -z "${STAFF_TOKENS:-}" ]; then
  if [ ! -s var/staff-token ]; then
    .venv/actions/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))' >var/staff-token
  fi
  STAFF_TOKENS="window:$(cat var/staff-token)"
  staff_note="sign in with the token in var/staff-token"
else
  staff_note="sign in with a token from STAFF_TOKENS"
fi
export STAFF_TOKENS
secret ACTION_SECRET action-secret    # the Rasa server -> the action server
secret SENDER_ID_SECRET sender-secret # WeChat and mini-program openids -> conversation ids

# Each server is started without the secrets it does not need (bot/settings.py SECRETS).
# ... and with its thread budget (ACTION_THREADS, RASA_THREADS): on two cores, processes whose
# libraries each spread over every core slow each other down many times over.
only_for() {  # process, command...
  local process=$1 unset=() threads=()
  shift
  while read -r name; do unset+=(-u "$name"); done < <(.venv/actions/bin/python -m bot.settings unset-for "$process")
  while read -r pair; do threads+=("$pair"); done < <(.venv/actions/bin/python -m bot.settings threads-for "$process")
  env "${unset[@]}" "${threads[@]}" "$@"
}

rasa_api=()
if [ -n "${RASA_API_TOKEN:-}" ]; then
  # On only with a token, and never published by the reverse proxy (deploy/nginx/).
  rasa_api=(--enable-api --auth-token "$RASA_API_TOKEN")
fi

# Neither server needs the other to start, so both load at once (Rasa's TensorFlow start-up
# dominates); the action server refuses to open its port until its model and index are loaded.
only_for actions .venv/actions/bin/python -m bot.servers.action_server >var/log/actions.log 2>&1 &
actions_pid=$!
only_for rasa .venv/rasa/bin/rasa run -i "$RASA_HOST" -p "$RASA_PORT" "${rasa_api[@]}" \
  -m models/guide-assistant.tar.gz --endpoints endpoints.yml --credentials credentials.yml \
  >var/log/rasa.log 2>&1 &
rasa_pid=$!
only_for staff .venv/actions/bin/python -m bot.servers.staff >var/log/staff.log 2>&1 &
staff_pid=$!
trap 'kill $actions_pid $rasa_pid $staff_pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

wait_for() {  # name, pid, url, log
  echo "starting the $1 (log: $4) ..."
  for _ in $(seq 1 300); do
    if curl -fs "$3" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "the $1 stopped; last lines of $4:" >&2
      tail -n 25 "$4" >&2
      exit 1
    fi
    sleep 1
  done
  echo "the $1 is not ready after 300 s; see $4" >&2
  exit 1
}
started=$(date +%s)
wait_for "action server" $actions_pid "http://$ACTION_HOST:$ACTION_PORT/health" var/log/actions.log
# The guide channel's health answers 200 once the model is loaded (Rasa's /status is API-only).
wait_for "Rasa server" $rasa_pid "http://$RASA_HOST:$RASA_PORT/webhooks/guide/" var/log/rasa.log
wait_for "staff server" $staff_pid "http://$STAFF_HOST:$STAFF_PORT/health" var/log/staff.log
cat <<MSG
The assistant is ready ($(( $(date +%s) - started )) s). Try:
  curl -s $RASA_HOST:$RASA_PORT/webhooks/guide/webhook -d '{"sender": "me", "message": "我身份证过期了怎么办"}'
Website widget (demo page; embed with one script tag): http://$RASA_HOST:$RASA_PORT/webhooks/guide/demo
Service-hall kiosk (touch and voice): http://$RASA_HOST:$RASA_PORT/webhooks/kiosk/
Window staff: http://$STAFF_HOST:$STAFF_PORT/staff ($staff_note).
Ctrl-C stops all three servers.
MSG
wait -n $actions_pid $rasa_pid $staff_pid
echo "a server stopped; see var/log/actions.log, var/log/rasa.log and var/log/staff.log" >&2
exit 1
