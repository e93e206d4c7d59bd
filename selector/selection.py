"""The seed's Worker #4 query, corrected (CONTRACT.md, Selection), and URL checks."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import Select, exists, func, literal, select, tuple_
from sqlalchemy.orm import Session

from shared.db.models import (
    IN_FLIGHT_STATUSES,
    NEEDS_TRACKING,
    OfficialAccount,
    PurchaseCheck,
    Purchasing,
    TrackingJob,
)
from shared.domain.statuses import not_done_sql
from shared.domain.urls import UnsafeValue, order_status_url


@dataclass(frozen=True)
class Match:
    purchasing_id: int
    order_number: str | None
    email: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class Candidate:
    match: Match
    url: str


@dataclass(frozen=True)
class Skipped:
    match: Match
    reason: str
    rule: str = "unsafe"


@functools.cache  # built once: constructing it costs about a millisecond of Python
def matching_query() -> Select:
    """Purchases to look up, oldest first; ``NEEDS_TRACKING`` matches the partial index."""
    p, account = Purchasing, OfficialAccount
    in_flight = exists().where(
        TrackingJob.purchasing_id == p.id, TrackingJob.status.in_(IN_FLIGHT_STATUSES)
    )
    waiting = exists().where(
        PurchaseCheck.purchasing_id == p.id, PurchaseCheck.next_check_at > func.now()
    )
    return (
        select(p.id, p.order_number, account.email, p.created_at)
        .join(account, account.id == p.official_account_id)
        .where(
            NEEDS_TRACKING,
            p.order_number.ilike("w%"),
            account.email.regexp_match(r"\S"),  # not NULL, not empty, not only whitespace
            not_done_sql(p.latest_delivery_status),
            ~in_flight,
            ~waiting,
        )
        .order_by(p.created_at, p.id)
    )


def iter_matches(session: Session, page_size: int = 50) -> Iterator[Match]:
    """The matches in order, a page at a time (keyset on ``(created_at, id)``): the usual
    pass reads one page; callers stop reading once they have enough."""
    query = matching_query().limit(page_size)
    after: Match | None = None
    while True:
        page = query
        if after is not None:
            page = page.where(
                tuple_(Purchasing.created_at, Purchasing.id)
                > tuple_(literal(after.created_at), literal(after.purchasing_id))
            )
        # Core execution on the session's connection: the ORM layer adds a millisecond here
        rows = [Match(*row) for row in session.connection().execute(page)]
        yield from rows
        if len(rows) < page_size:
            return
        after = rows[-1]


def choose(matches: Iterable[Match], limit: int) -> tuple[list[Candidate], list[Skipped]]:
    """Up to ``limit`` candidates with a safe URL; the unsafe ones met on the way are
    skipped with their reason and do not count against the limit."""
    candidates: list[Candidate] = []
    skipped: list[Skipped] = []
    for match in matches:
        try:
            candidates.append(Candidate(match, order_status_url(match.order_number, match.email)))
        except UnsafeValue as error:
            skipped.append(Skipped(match, str(error), error.rule))
        if len(candidates) >= limit:
            break
    return candidates, skipped
