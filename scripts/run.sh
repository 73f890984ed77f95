#!/usr/bin/env bash
# Start the action server, wait until it is ready, then the Rasa server in the foreground.
# Ctrl-C stops both. Logs of the action server go to var/log/actions.log.
# Ports and interfaces come from the settings table (bot/settings.py): ACTION_PORT, RASA_PORT ...
set -euo pipefail
cd "$(dirname "$0")/.."

ACTION_HOST=${ACTION_HOST:-127.0.0.1}
ACTION_PORT=${ACTION_PORT:-5055}
RASA_HOST=${RASA_HOST:-127.0.0.1}
RASA_PORT=${RASA_PORT:-5005}
export ACTION_HOST ACTION_PORT
export ACTION_ENDPOINT_URL=${ACTION_ENDPOINT_URL:-http://$ACTION_HOST:$ACTION_PORT/webhook}
export RASA_TRACKER_DB=${RASA_TRACKER_DB:-var/rasa/tracker.db}
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

mkdir -p var/log var/rasa
.venv/actions/bin/python -m bot.action_server >var/log/actions.log 2>&1 &
actions_pid=$!
trap 'kill $actions_pid 2>/dev/null || true' EXIT INT TERM

echo "starting the action server (log: var/log/actions.log) ..."
for _ in $(seq 1 180); do
  if curl -fs "http://$ACTION_HOST:$ACTION_PORT/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 $actions_pid 2>/dev/null; then
    echo "the action server stopped; last lines of var/log/actions.log:" >&2
    tail -n 20 var/log/actions.log >&2
    exit 1
  fi
  sleep 1
done
echo "action server ready on http://$ACTION_HOST:$ACTION_PORT"
echo "starting the Rasa server on http://$RASA_HOST:$RASA_PORT (REST: /webhooks/rest/webhook); ready when it logs 'Rasa server is up and running'"
.venv/rasa/bin/rasa run -i "$RASA_HOST" -p "$RASA_PORT" --enable-api --cors "*" \
  -m models/guide-assistant.tar.gz --endpoints endpoints.yml --credentials credentials.yml
