"""Start the action server with the guide service already loaded.

rasa-sdk's own ``python -m rasa_sdk`` would load the embedding model on the first
citizen's question (10-30 s). This entry point loads it first, answers one warm-up query,
and only then opens the port — so a port that answers is a server that is ready.
It also binds to ``ACTION_HOST`` (loopback by default) instead of rasa-sdk's 0.0.0.0, and
serves each item's printable one-time-notification sheet at ``/sheets/<guide id>``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from html import escape
from typing import Any

from bot.errors import BotError
from bot.privacy import install_log_masking
from bot.service import GuideService, install_service
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.action_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="port (default: ACTION_PORT)")
    parser.add_argument("--host", help="interface (default: ACTION_HOST)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_masking()  # citizens type phone numbers; logs must not keep them
    log = logging.getLogger("action_server")
    try:
        settings = load_settings()
        started = time.perf_counter()
        service = GuideService.from_settings(settings)
        install_service(service)
        from bot.tickets import get_store

        try:
            get_store()  # migrate the ticket schema now, not on the first citizen's ticket
        except BotError as error:  # guides can still be answered; tickets retry on first use
            log.warning("ticket store not reachable yet (%s); tickets will retry when filed", error)
        service.search("身份证到期怎么换")  # warm-up: first encode allocates the model's buffers
        log.info(
            "guide service ready: %d guides, model %s, in %.1f s",
            len(service.retriever.guides), service.retriever.encoder.name, time.perf_counter() - started,
        )
    except BotError as error:
        print(f"action server cannot start: {error}", file=sys.stderr)
        return 2

    from rasa_sdk.endpoint import create_app

    app = create_app("actions")
    add_sheet_route(app, service)
    host = args.host or settings.action_host
    port = args.port or settings.action_port
    log.info("action server listening on http://%s:%d/webhook", host, port)
    app.run(host, port, workers=1, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
