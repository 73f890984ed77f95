"""Start the action server with the guide service already loaded.

rasa-sdk's own ``python -m rasa_sdk`` would load the embedding model on the first
citizen's question (10-30 s). This entry point loads it first, answers one warm-up query,
and only then opens the port — so a port that answers is a server that is ready.
It also binds to ``ACTION_HOST`` (loopback by default) instead of rasa-sdk's 0.0.0.0, and
serves each item's printable one-time-notification sheet at ``/sheets/<guide id>``.

Who may call what:

* ``/webhook`` and ``/actions`` (run an action, list them): only the Rasa server, which sends
  ``ACTION_SECRET`` in the ``X-Action-Secret`` header (``endpoints.yml``). A forged tracker
  posted by anyone else is refused before it is read. No CORS: no browser ever calls these.
* ``/sheets/<guide id>``: anyone (citizens open and print them; the reverse proxy publishes
  this path and nothing else of this server).
* ``/health``: anyone on the machine (the proxy does not publish it).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys
import time
from html import escape
from typing import Any

from bot.answering.service import GuideService, install_service
from bot.errors import BotError, ConfigError
from bot.privacy import install_log_masking
from bot.settings import load_settings


def add_sheet_route(app: Any, service: GuideService) -> None:
    """GET /sheets/<guide id>: the printable sheet (404 page for an unknown id)."""
    from sanic import response

    async def sheet(request: Any, guide_id: str) -> Any:
        page = service.sheet_html(guide_id)
        if page is None:
            return response.html(
                "<!doctype html><meta charset=utf-8><title>未找到</title><p>没有这个事项的告知单。"
                f"请拨打 {escape(service.settings.hotline)} 咨询。</p>", status=404)
        return response.html(page, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    app.add_route(sheet, "/sheets/<guide_id>", methods=["GET"])


#: The header carrying the shared secret (``endpoints.yml``'s ``action_endpoint.headers``).
SECRET_HEADER = "X-Action-Secret"
#: Largest request the action server reads: an action call carries the conversation's events,
#: which stay far below this; anything bigger is refused before it is read.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def require_secret(app: Any, secret: str) -> None:
    """Refuse every call but the public paths unless it carries ``secret`` (401, nothing read further)."""
    from sanic import response

    expected = secret.encode()

    @app.middleware("request")
    async def only_rasa(request: Any) -> Any:
        if request.path == "/health" or request.path.startswith("/sheets/"):
            return None
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            logging.getLogger("action_server").warning("refused %s %s without the action secret",
                                                       request.method, request.path)
            return response.json({"error": "this server answers the Rasa server only"}, status=401)
        return None


def create_action_app(service: GuideService, secret: str) -> Any:
    """rasa-sdk's app with our actions, without CORS, behind the shared secret, plus the sheets."""
    if len(secret) < 16:
        raise ConfigError("ACTION_SECRET must be set (at least 16 characters) and given to both the action "
                          "server and the Rasa server; `make run` makes one in var/action-secret")
    from rasa_sdk.endpoint import create_app

    app = create_app("actions", cors_origins=None)  # None: no Access-Control-Allow-Origin for any origin
    app.config.REQUEST_MAX_SIZE = MAX_REQUEST_BYTES
    require_secret(app, secret)
    add_sheet_route(app, service)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.servers.action_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="port (default: ACTION_PORT)")
    parser.add_argument("--host", help="interface (default: ACTION_HOST)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_masking()  # citizens type phone numbers; logs must not keep them
    log = logging.getLogger("action_server")
    os.umask(0o077)  # the ticket database and anything else written here: this user only
    try:
        settings = load_settings()
        if len(settings.action_secret) < 16:
            raise ConfigError("ACTION_SECRET must be set (at least 16 characters), the same for the Rasa server; "
                              "`make run` makes one in var/action-secret")
        started = time.perf_counter()
        service = GuideService.from_settings(settings)
        install_service(service)
        from bot.tickets import get_store

        try:
            get_store()  # migrate the ticket schema now, not on the first citizen's ticket
        except BotError as error:  # guides can still be answered; tickets retry on first use
            log.warning("ticket store not reachable yet (%s); tickets will retry when filed", error)
        # Warm-up before the port opens: the first encode allocates the model's buffers, the first
        # follow-up builds the entity finder (spaCy + jieba, 1-3 s) and the follow-up scale.
        service.search("身份证到期怎么换")
        service.respond("要带户口本吗", "ask_aspect", current_id=service.retriever.index.records[0].id)
        log.info(
            "guide service ready: %d guides, model %s, in %.1f s",
            len(service.retriever.guides), service.retriever.encoder.name, time.perf_counter() - started,
        )
    except BotError as error:
        print(f"action server cannot start: {error}", file=sys.stderr)
        return 2

    try:
        app = create_action_app(service, settings.action_secret)
    except BotError as error:
        print(f"action server cannot start: {error}", file=sys.stderr)
        return 2
    host = args.host or settings.action_host
    port = args.port or settings.action_port
    log.info("action server listening on http://%s:%d/webhook", host, port)
    app.run(host, port, workers=1, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
