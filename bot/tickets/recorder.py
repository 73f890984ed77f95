"""What citizens asked and how they rated it, for the hall's reports.

The :class:`Recorder` writes and reads the ``interactions`` and ``ratings`` tables of the ticket
database (the schema and its migrations are the ticket store's, :mod:`bot.tickets.store`), with
the store's engine and clock: ``Recorder.over(store)``. Questions and comments are stored masked
(:mod:`bot.privacy`), so nothing read back here holds a phone or identity number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.privacy import mask_text
from bot.tickets.store import TicketError, TicketStore, interactions, ratings, transaction


@dataclass(frozen=True)
class Interaction:
    """One question and the kind of reply it got (``notification``, ``fallback``, ``empty`` …)."""

    at: dt.datetime
    conversation_id: str
    question: str
    kind: str
    guide_id: str | None


@dataclass(frozen=True)
class Rating:
    """One rating (1 to 5 stars), with the item it was about when there was one."""

    at: dt.datetime
    conversation_id: str
    rating: int
    comment: str | None
    guide_id: str | None


class Recorder:
    """Interactions and ratings, over the ticket database. Thread-safe, cheap to build."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime]) -> None:
        self.engine = engine
        self.now = clock

    @classmethod
    def over(cls, store: TicketStore) -> Recorder:
        """A recorder on the store's database and clock."""
        return cls(store.engine, store.now)

    def record_interaction(self, conversation_id: str, question: str, kind: str, guide_id: str | None) -> None:
        with transaction(self.engine) as conn:
            conn.execute(interactions.insert().values(
                at=self.now(), conversation_id=conversation_id[:200], question=mask_text(question)[:500], kind=kind,
                guide_id=guide_id))

    def record_rating(self, conversation_id: str, rating: int, comment: str | None, guide_id: str | None) -> None:
        if not 1 <= rating <= 5:
            raise TicketError("a rating is 1 to 5")
        with transaction(self.engine) as conn:
            conn.execute(ratings.insert().values(
                at=self.now(), conversation_id=conversation_id[:200], rating=rating,
                comment=mask_text(comment)[:1000] if comment else None, guide_id=guide_id))

    def interactions_between(self, start: dt.datetime, end: dt.datetime) -> list[Interaction]:
        """Every interaction from ``start`` up to (not including) ``end``, oldest first."""
        query = (sa.select(interactions).where(interactions.c.at >= start, interactions.c.at < end)
                 .order_by(interactions.c.at, interactions.c.id))
        with transaction(self.engine) as conn:
            return [Interaction(row.at, row.conversation_id, row.question, row.kind, row.guide_id)
                    for row in conn.execute(query)]

    def ratings_between(self, start: dt.datetime, end: dt.datetime) -> list[Rating]:
        """Every rating from ``start`` up to (not including) ``end``, oldest first."""
        query = (sa.select(ratings).where(ratings.c.at >= start, ratings.c.at < end)
                 .order_by(ratings.c.at, ratings.c.id))
        with transaction(self.engine) as conn:
            return [Rating(row.at, row.conversation_id, row.rating, row.comment, row.guide_id)
                    for row in conn.execute(query)]
