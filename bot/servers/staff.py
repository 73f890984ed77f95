"""The staff server: an HTTP API and a web page for the window's tickets (台账).

    python -m bot.servers.staff            # http://127.0.0.1:5056/staff

Every ``/api`` call needs ``Authorization: Bearer <token>`` with a token from
``STAFF_TOKENS``; the staff member's name recorded in the ledger is the token's name, never
something the client claims. Phone numbers are masked in every list and only shown when a
staff member opens them on one ticket (``?reveal=phone``), which the ledger records.

API (JSON):

* ``GET  /api/meta``                          categories, statuses, triage levels
* ``GET  /api/tickets?status=&category=&triage=&overdue=true|false``
* ``GET  /api/tickets/<number>[?reveal=phone]``  one ticket with its history
* ``POST /api/tickets/<number>/assign``   ``{"assignee": "李四"}``
* ``POST /api/tickets/<number>/triage``   ``{"triage": "complex"}``
* ``POST /api/tickets/<number>/notes``    ``{"note": "..."}``
* ``POST /api/tickets/<number>/resolve``  ``{"resolution": "..."}``
* ``GET  /api/reports?from=YYYY-MM-DD&to=YYYY-MM-DD``

Errors are ``{"error": "..."}`` with 400 (bad input), 401 (no or wrong token), 404 (no such
ticket) or 503 (database unavailable).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import logging
import sys
from pathlib import Path
from typing import Any

from bot.errors import BotError
from bot.privacy import install_log_masking, mask_phone
from bot.servers.reports import report
from bot.settings import Settings, load_settings
from bot.tickets import open_store
from bot.tickets.model import CATEGORIES, SOURCES, STATUSES, TRIAGE, Ticket
from bot.tickets.store import TicketError, TicketFilter, TicketStore, TicketStoreUnavailable

STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_BODY = 64 * 1024
#: Sent with every answer of the staff server.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def ticket_json(ticket: Ticket, now: dt.datetime, *, reveal_phone: bool = False) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "category": ticket.category, "category_label": CATEGORIES.get(ticket.category, ticket.category),
        "status": ticket.status, "status_label": STATUSES.get(ticket.status, ticket.status),
        "triage": ticket.triage, "triage_label": TRIAGE.get(ticket.triage, ticket.triage),
        "source": ticket.source, "source_label": SOURCES.get(ticket.source, ticket.source),
        "item": ticket.item, "name": ticket.name, "description": ticket.description, "rating": ticket.rating,
        "phone": (ticket.phone if reveal_phone else mask_phone(ticket.phone)) if ticket.phone else None,
        "assignee": ticket.assignee, "resolution": ticket.resolution,
        "created_at": ticket.created_at.isoformat(timespec="minutes"),
        "due_at": ticket.due_at.isoformat(timespec="minutes"),
        "resolved_at": ticket.resolved_at.isoformat(timespec="minutes") if ticket.resolved_at else None,
        "overdue": ticket.overdue(now),
        "history": [{"at": h.at.isoformat(timespec="minutes"), "actor": h.actor, "action": h.action,
                     "detail": h.detail} for h in ticket.history],
    }


def create_app(settings: Settings, store: TicketStore, titles: dict[str, str] | None = None) -> Any:
    """The Sanic app; ``store`` is built once by the caller (tests pass their own)."""
    from sanic import Sanic, response
    from sanic.request import Request

    app = Sanic("guide_staff")
    app.config.REQUEST_MAX_SIZE = MAX_BODY
    tokens = dict((token, name) for name, token in settings.staff_tokens)

    def error(status: int, message: str) -> Any:
        return response.json({"error": message}, status=status)

    def who(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        for known, name in tokens.items():
            if hmac.compare_digest(known.encode(), token.strip().encode("utf-8", "surrogateescape")):
                return name
        return None

    def body(request: Request, field: str) -> str:
        try:
            data = request.json
        except Exception:
            raise TicketError("the body must be JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get(field), str):
            raise TicketError(f'the body must be a JSON object with a text field "{field}"')
        return str(data[field])[:4000]

    @app.middleware("request")
    async def authenticate(request: Request) -> Any:
        if request.path.startswith("/api/"):
            name = who(request)
            if name is None:
                return error(401, "missing or wrong staff token (Authorization: Bearer <token>)")
            request.ctx.staff = name
        return None

    @app.middleware("response")
    async def protect(request: Request, response_: Any) -> None:
        """The page and the API as real headers, not only a meta tag: nothing loaded or sent
        anywhere but here, never framed by another site, no referrer leaving the page."""
        response_.headers.update(SECURITY_HEADERS)
        response_.headers.setdefault("Cache-Control", "no-store")  # API answers hold citizens' details

    @app.exception(TicketStoreUnavailable)
    async def unavailable(request: Request, exc: Exception) -> Any:
        return error(503, "ticket database unavailable; try again shortly")

    @app.exception(TicketError)
    async def bad(request: Request, exc: Exception) -> Any:
        message = str(exc)
        return error(404 if message.startswith("no ticket") else 400, message)

    @app.get("/health")
    async def health(request: Request) -> Any:
        return response.json({"status": "ok"})

    @app.get("/staff")
    async def page(request: Request) -> Any:
        return await response.file(STATIC / "staff.html", headers={"Cache-Control": "no-cache"})

    @app.get("/staff/<name:[a-z0-9_-]+\\.(?:js|css)>")
    async def asset(request: Request, name: str) -> Any:
        path = STATIC / name
        if not path.is_file():
            return error(404, "not found")
        return await response.file(path, headers={"Cache-Control": "no-cache"})

    @app.get("/api/meta")
    async def meta(request: Request) -> Any:
        return response.json({"categories": CATEGORIES, "statuses": STATUSES, "triage": TRIAGE,
                              "sources": SOURCES, "staff": request.ctx.staff})

    @app.get("/api/tickets")
    async def listing(request: Request) -> Any:
        args = request.args
        status, category, triage = args.get("status"), args.get("category"), args.get("triage")
        for value, allowed, name in ((status, STATUSES, "status"), (category, CATEGORIES, "category"),
                                     (triage, TRIAGE, "triage")):
            if value and value not in allowed:
                raise TicketError(f"unknown {name} {value!r}; one of {', '.join(allowed)}")
        overdue_arg = args.get("overdue")
        overdue = None if overdue_arg in (None, "") else overdue_arg.lower() in ("1", "true", "yes")
        found = store.list(TicketFilter(status=status or None, category=category or None, triage=triage or None,
                                        overdue=overdue))
        now = store.now()
        return response.json({"now": now.isoformat(timespec="minutes"),
                              "tickets": [ticket_json(t, now) for t in found]})

    @app.get("/api/tickets/<number>")
    async def one(request: Request, number: str) -> Any:
        reveal = request.args.get("reveal") == "phone"
        ticket = store.open_phone(number, request.ctx.staff) if reveal else store.get(number)
        if ticket is None:
            raise TicketError(f"no ticket {number}")
        return response.json(ticket_json(ticket, store.now(), reveal_phone=reveal))

    @app.post("/api/tickets/<number>/<verb:assign|triage|notes|resolve>")
    async def change(request: Request, number: str, verb: str) -> Any:
        actor = request.ctx.staff
        if verb == "assign":
            ticket = store.assign(number, body(request, "assignee"), actor)
        elif verb == "triage":
            ticket = store.set_triage(number, body(request, "triage"), actor)
        elif verb == "notes":
            ticket = store.add_note(number, body(request, "note"), actor)
        else:
            ticket = store.resolve(number, body(request, "resolution"), actor)
        return response.json(ticket_json(ticket, store.now()))

    @app.get("/api/reports")
    async def reports(request: Request) -> Any:
        try:
            today = store.now().date()
            start = dt.date.fromisoformat(request.args.get("from") or (today - dt.timedelta(days=29)).isoformat())
            end = dt.date.fromisoformat(request.args.get("to") or today.isoformat())
        except ValueError:
            raise TicketError("from and to must be dates like 2026-11-26") from None
        if (end - start).days > 366:
            raise TicketError("a report covers at most one year")
        try:
            return response.json(report(store, start, end, titles))
        except BotError as exc:
            raise TicketError(str(exc)) from None

    return app


def _titles(settings: Settings) -> dict[str, str]:
    """Guide titles for the reports, read from the built index (no model needed)."""
    import json

    path = settings.index_dir / "records.jsonl"
    if not path.is_file():
        return {}
    out = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                record = json.loads(line)
                out[record["id"]] = record.get("title") or record.get("question") or record["id"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.servers.staff", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int)
    parser.add_argument("--host")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_masking()
    try:
        settings = load_settings()
        store = open_store(settings)  # the same calendar and clock as the action server and the reports
    except BotError as error:
        print(f"staff server cannot start: {error}", file=sys.stderr)
        return 2
    if not settings.staff_tokens:
        print("staff server: no STAFF_TOKENS set, so nobody can sign in; set e.g. "
              "STAFF_TOKENS=window1:<a long random token>", file=sys.stderr)
    app = create_app(settings, store, _titles(settings))
    app.run(args.host or settings.staff_host, args.port or settings.staff_port, workers=1, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
