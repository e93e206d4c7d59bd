"""The refresh task's selection (docs/refresh.md): purchases whose Japan Post parcel
is under way, ten to a search page.

A purchase is due when its order number starts with W, its carrier (from
``shipping_method``) is Japan Post or JP Logistics, its tracking number is a valid
12-digit number, its status is not done, its status was last read longer than
``REFRESH_INTERVAL_S`` ago (or never), no job of any task is in flight for it, and no
refresh of it began within ``REFRESH_INTERVAL_S`` (a page that failed is not asked for
again at once). Oldest check first.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, exists, func, nulls_first, select
from sqlalchemy.orm import Session

from selector.selection import Candidate, Match, Skipped
from shared.db.models import MAY_NEED_REFRESH, Purchasing, TrackingBatch, TrackingJob
from shared.db.statuses import IN_FLIGHT
from shared.domain import japan_post
from shared.domain.statuses import not_done_sql
from shared.domain.tracking_numbers import Carrier, carrier_sql, domestic_12_sql, normalize
from shared.tasks import JAPAN_POST_TRACKING_10


def due_query(interval_s: float, limit: int) -> Select:
    """Purchases due a status check, oldest check first (at most ``limit``)."""
    p, job = Purchasing, TrackingJob
    since = func.now() - dt.timedelta(seconds=interval_s)
    in_flight = exists().where(job.purchasing_id == p.id, job.status.in_(IN_FLIGHT))
    refreshed = (
        exists()
        .where(job.purchasing_id == p.id, job.created_at > since)
        .where(TrackingBatch.id == job.batch_id)
        .where(TrackingBatch.task_name == JAPAN_POST_TRACKING_10.name)
    )
    return (
        select(p.id, p.order_number, p.tracking_number, p.created_at)
        .where(
            MAY_NEED_REFRESH,  # the partial index: the rest is checked on its rows
            p.order_number.ilike("w%"),
            carrier_sql(p.shipping_method, Carrier.JAPAN_POST),
            domestic_12_sql(p.tracking_number),
            not_done_sql(p.latest_delivery_status),
            (p.delivery_status_checked_at.is_(None)) | (p.delivery_status_checked_at < since),
            ~in_flight,
            ~refreshed,
        )
        .order_by(nulls_first(p.delivery_status_checked_at), p.id)
        .limit(limit)
    )


def choose_due(
    session: Session, interval_s: float, limit: int
) -> tuple[list[Candidate], list[Skipped]]:
    """Up to ``limit`` due purchases, each with its search page: the purchases in
    order, ten distinct numbers to a page (two purchases of one number share it)."""
    rows = session.execute(due_query(interval_s, limit)).all()
    pages: list[list[tuple[Match, str]]] = []
    numbers: list[set[str]] = []
    for purchasing_id, order_number, tracking_number, created_at in rows:
        number = normalize(tracking_number)
        match = Match(purchasing_id, order_number, None, created_at, tracking_number=number)
        if not pages or (number not in numbers[-1] and len(numbers[-1]) == japan_post.MAX_NUMBERS):
            pages.append([])
            numbers.append(set())
        pages[-1].append((match, number))
        numbers[-1].add(number)
    candidates = []
    for page in pages:
        url = japan_post.search_url(list(dict.fromkeys(number for _, number in page)))
        candidates += [Candidate(match, url) for match, _ in page]
    return candidates, []
