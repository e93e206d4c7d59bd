"""The seed's Worker #4 query, corrected (docs/selection.md), and URL checks."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import BigInteger, DateTime, Float, Select, exists, func, select, tuple_
from sqlalchemy.orm import Session

from shared.db.models import (
    NEEDS_TRACKING,
    OfficialAccount,
    PurchaseCheck,
    Purchasing,
)
from shared.db.prepared import Prepared, parameter
from shared.db.rechecks import expired_before
from shared.db.sql import job_in_flight
from shared.domain.statuses import not_done_sql
from shared.domain.urls import UnsafeValue, order_status_url


@dataclass(frozen=True)
class Match:
    purchasing_id: int
    order_number: str | None
    email: str | None
    created_at: dt.datetime
    #: its number, normalised (the refresh task looks purchases up by it)
    tracking_number: str | None = None


@dataclass(frozen=True)
class Candidate:
    match: Match
    url: str


@dataclass(frozen=True)
class Skipped:
    match: Match
    reason: str
    rule: str = "unsafe"


#: the purchase's account has an e-mail address: not NULL, not empty, not only whitespace
HAS_EMAIL = OfficialAccount.email.regexp_match(r"\S")


@functools.cache  # built once: constructing it costs about a millisecond of Python
def matching_query() -> Select:
    """Purchases to look up, oldest first; ``NEEDS_TRACKING`` matches the partial index.
    Its parameter 3 is ``RECHECK_EXPIRE_S``: purchases whose attempts began longer ago
    than that are given up."""
    p, account = Purchasing, OfficialAccount
    waiting = exists().where(
        PurchaseCheck.purchasing_id == p.id,
        PurchaseCheck.next_check_at.is_(None)  # never again
        | (PurchaseCheck.next_check_at > func.now())
        | expired_before(parameter(3, Float())),
    )
    return (
        select(p.id, p.order_number, account.email, p.created_at)
        .join(account, account.id == p.official_account_id)
        .where(
            NEEDS_TRACKING,
            p.order_number.ilike("w%"),
            HAS_EMAIL,
            not_done_sql(p.latest_delivery_status),
            ~job_in_flight(),
            ~waiting,
        )
        .order_by(p.created_at, p.id)
    )


@functools.cache
def matching_page(size: int) -> Prepared:
    """A page of :func:`matching_query`: the next ``size`` matches after ``($1, $2)``, a
    ``(created_at, id)`` key; prepared, as every pass runs it. ``size`` is a constant of
    the statement: with the limit a parameter, PostgreSQL would plan every execution."""
    after = tuple_(Purchasing.created_at, Purchasing.id) > tuple_(
        parameter(1, DateTime(timezone=True)), parameter(2, BigInteger())
    )
    page = matching_query().where(after).limit(size)
    return Prepared(
        f"trackfill_matching_page_{size}", page, ("timestamptz", "bigint", "double precision")
    )


def iter_matches(session: Session, expire_s: float, page_size: int = 50) -> Iterator[Match]:
    """The matches in order, a page at a time (keyset on ``(created_at, id)``): the usual
    pass reads one page; callers stop reading once they have enough."""
    after: tuple[object, int] = ("-infinity", 0)
    page = matching_page(page_size)
    while True:
        rows = [Match(*row) for row in page.execute(session.connection(), *after, expire_s)]
        yield from rows
        if len(rows) < page_size:
            return
        after = (rows[-1].created_at, rows[-1].purchasing_id)


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
