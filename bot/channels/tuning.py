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


def apply() -> None:
    """Install the cuts (idempotent). Rasa imports ``jsonschema.validate`` inside the function that
    checks action replies, so replacing the module attribute reaches it."""
    global _applied
    if _applied:
        return
    try:
        import jsonschema
    except ImportError:  # not in this venv: nothing to speed up
        return
    jsonschema.validate = validate
    _applied = True
    logger.debug("jsonschema.validate checks each schema once")
