"""The Rasa server's CPU cuts (:mod:`bot.channels.tuning`, the SQLite tracker store's settings and
its last-turn read) change how much work a message costs, never what the citizen gets: checked
against the real Rasa server and, for the schema check, against jsonschema's own ``validate`` in
the Rasa server's virtual environment."""

from __future__ import annotations

import sqlite3
import subprocess

import pytest

from ops.stack import RASA_BIN, ROOT, new_sender, texts

pytestmark = pytest.mark.e2e

SAME_AS_JSONSCHEMA = r"""
import jsonschema
from rasa.core.actions.action import RemoteAction
from bot.channels import tuning

spec = RemoteAction.action_response_format_spec()
cases = [
    {"events": [{"event": "slot", "name": "item", "value": "x", "timestamp": None}], "responses": [{"text": "好"}]},
    {"events": [{"event": 5}], "responses": []},
    {"events": "not a list"},
    {"responses": ["not an object"]},
    [],
]

def outcome(validate, instance, schema):
    try:
        validate(instance, schema)
        return "ok"
    except jsonschema.ValidationError as error:
        return ("invalid", error.message, list(error.absolute_path))
    except jsonschema.SchemaError as error:
        return ("bad schema", error.message)

original = jsonschema.validate
for instance in cases:
    for _ in range(2):  # the second call uses the cached check
        assert outcome(tuning.validate, instance, spec) == outcome(original, instance, spec), instance
bad = {"type": "no such type"}
assert outcome(tuning.validate, {}, bad)[0] == "bad schema" == outcome(original, {}, bad)[0]
tuning.apply()
assert jsonschema.validate is tuning.validate
print("same")
"""


def test_the_cached_schema_check_decides_exactly_as_jsonschema():
    done = subprocess.run([str(RASA_BIN.with_name("python")), "-c", SAME_AS_JSONSCHEMA], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip().endswith("same"), done.stderr[-2000:]


def test_the_sqlite_tracker_store_runs_in_wal_mode(servers):
    servers.say(new_sender("e2e"), "你好")
    with sqlite3.connect(servers.env["RASA_TRACKER_DB"]) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("typed", ["第一个", "1", "{title}"])
def test_typing_a_button_reads_the_last_turn_from_the_store(servers, typed):
    user = new_sender("e2e")
    messages = servers.say(user, "身份证")
    buttons = [b for m in messages for b in m.get("buttons", [])]
    assert len(buttons) >= 2, messages
    chosen = texts(servers.say(user, typed.format(title=buttons[0]["title"])))
    assert "一次性告知" in chosen and buttons[0]["title"].split("（")[0][:6] in chosen, chosen
