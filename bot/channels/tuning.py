"""CPU the Rasa server spends on every message that buys nothing, cut where the profile shows it.

Loaded by the **Rasa server** (its own venv): :class:`bot.channels.tracker_store.MaskingSQLTrackerStore`
calls :func:`apply` when Rasa builds it at start-up, so every deployment gets the same cuts. Each
cut changes how much work is done, never what is decided. The figures are from ``make bench``'s
profile of the Rasa process under load (``results/profile-rasa.txt``, README "Speed").

* **The action server's reply is validated against a schema whose own validity is re-proved on
  every call.** Rasa runs ``jsonschema.validate(reply, spec)`` after each custom action; that
  function first checks the *schema* against its draft's meta-schema (a deep, recursive walk)
  before it checks the reply. The schema is Rasa's constant, so it is checked once here per
  distinct schema, and the reply is still validated in full with the same errors
  (``best_match``) as before. This was a third of the Rasa server's CPU per message.
* **Every stored event's class is found by walking the whole class tree.** Reading a tracker
  turns each stored event back into an object through ``Event.resolve_by_type``, which calls
  ``all_subclasses(Event)`` (a recursive walk of ~80 classes with an ``inspect.isabstract`` test
  each) for *every event*: 60% of reading a 50-event conversation. The classes are looked up in
  a table instead, built by the same walk in the same order (the first class with a type name
  wins, as before) and rebuilt when a name is not in it, so a class defined later is still found.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_validators: dict[str, Any] = {}
_applied = False


def _fingerprint(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, default=repr, ensure_ascii=False)


def validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:
    """``jsonschema.validate`` with the schema's own check done once per distinct schema.

    Same contract as the original: raises ``SchemaError`` for a bad schema and the best-matching
    ``ValidationError`` for a bad instance."""
    import jsonschema
    from jsonschema import exceptions

    key = f"{getattr(cls, '__name__', '')}|{args!r}|{sorted(kwargs.items())!r}|{_fingerprint(schema)}"
    validator = _validators.get(key)
    if validator is None:
        klass = cls or jsonschema.validators.validator_for(schema)
        klass.check_schema(schema)
        validator = klass(schema, *args, **kwargs)
        with _lock:
            if len(_validators) > 256:  # schemas built per call from changing data: do not grow forever
                _validators.clear()
            _validators[key] = validator
    error = exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


class EventTypes:
    """``Event.resolve_by_type`` from a table: type name -> the first class in ``all_subclasses``
    order that has it (the original's answer), the walk redone only for a name not in the table."""

    def __init__(self, base: Any, walk: Any) -> None:
        self._base = base
        self._walk = walk
        self._table: dict[str, Any] = {}

    def _rebuild(self) -> None:
        table: dict[str, Any] = {}
        for cls in self._walk(self._base):
            table.setdefault(cls.type_name, cls)
        self._table = table

    def resolve(self, type_name: str, default: Any = None) -> Any:
        cls = self._table.get(type_name)
        if cls is None:
            self._rebuild()
            cls = self._table.get(type_name)
        if cls is not None:
            return cls
        if type_name == "topic":
            return None  # as the original: old TopicSet events are skipped
        if default is not None:
            return default
        raise ValueError(f"Unknown event name '{type_name}'.")


def apply() -> None:
    """Install the cuts (idempotent). Rasa imports ``jsonschema.validate`` inside the function that
    checks action replies, so replacing the module attribute reaches it; ``resolve_by_type`` is a
    static method every caller reaches through the class."""
    global _applied
    if _applied:
        return
    try:
        import jsonschema
    except ImportError:  # not in this venv: nothing to speed up
        return
    jsonschema.validate = validate
    try:
        from rasa.shared.core.events import Event
        from rasa.shared.utils.common import all_subclasses
    except ImportError:  # pragma: no cover - Rasa is in the venv that calls this
        pass
    else:
        Event.resolve_by_type = staticmethod(EventTypes(Event, all_subclasses).resolve)
    _applied = True
    logger.debug("jsonschema.validate checks each schema once; event classes are found from a table")
