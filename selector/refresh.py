"""The refresh task's selection (docs/refresh.md): purchases whose Japan Post parcel
is under way, ten to a search page.

A purchase is due when its order number starts with W, its carrier (from
``shipping_method``) is Japan Post or JP Logistics, its tracking number is a valid
12-digit number, its status is not done, its status was last read longer ago than the
schedule's wait after its status code (docs/schedule.md: a third of
``REFRESH_INTERVAL_S`` out for delivery, one in transit, more for parcels that wait),
or never, no job of any task is in flight for it, and no refresh of it began within
that wait (a page that failed is not asked for again at once). Oldest check first. A
last page with room is filled with parcels on the move whose next look is soonest.
"""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    case,
    exists,
    func,
    nulls_first,
    select,
)
from sqlalchemy.orm import Session

from selector.selection import Candidate, Match, Skipped
from shared.db.models import MAY_NEED_REFRESH, Purchasing, TrackingBatch, TrackingJob
from shared.db.sql import job_in_flight
from shared.db.sql import seconds as interval
from shared.domain import japan_post
from shared.domain.schedule import REFRESH_FACTORS, RIDE_ALONG_CODES, Schedule, refresh_wait_s
from shared.domain.statuses import not_done_sql
from shared.domain.tracking_numbers import Carrier, carrier_sql, domestic_12_sql, normalize
from shared.tasks import JAPAN_POST_TRACKING_10


def wait_sql(schedule: Schedule) -> ColumnElement:
    """The schedule's wait after each status code (:func:`refresh_wait_s`), as an interval
    for the selection's SQL: one ``CASE`` compiled from the one table."""
    waits = [
        (Purchasing.delivery_status_code == code.value, refresh_wait_s(code, schedule))
        for code in REFRESH_FACTORS
        if code is not None
    ]
    seconds = case(*waits, else_=refresh_wait_s(None, schedule))
    return interval(seconds)


def _followed(wait: ColumnElement) -> list[ColumnElement]:
    """A parcel the task follows, whose status was read longer than ``wait`` ago (or
    never), with no job in flight and no refresh of it begun within ``wait`` (a page
    that failed is not asked for again at once)."""
    p, job = Purchasing, TrackingJob
    since = func.now() - wait
    refreshed = (
        exists()
        .where(job.purchasing_id == p.id, job.created_at > since)
        .where(TrackingBatch.id == job.batch_id)
        .where(TrackingBatch.task_name == JAPAN_POST_TRACKING_10.name)
    )
    return [
        MAY_NEED_REFRESH,  # the partial index: the rest is checked on its rows
        p.order_number.ilike("w%"),
        carrier_sql(p.shipping_method, Carrier.JAPAN_POST),
        domestic_12_sql(p.tracking_number),
        not_done_sql(p.latest_delivery_status),
        (p.delivery_status_checked_at.is_(None)) | (p.delivery_status_checked_at < since),
        ~job_in_flight(),
        ~refreshed,
    ]


_COLUMNS = (
    Purchasing.id,
    Purchasing.order_number,
    Purchasing.tracking_number,
    Purchasing.created_at,
)


def due_query(schedule: Schedule, limit: int) -> Select:
    """Purchases due a status check by the schedule, oldest check first (at most
    ``limit``)."""
    p = Purchasing
    return (
        select(*_COLUMNS)
        .where(*_followed(wait_sql(schedule)))
        .order_by(nulls_first(p.delivery_status_checked_at), p.id)
        .limit(limit)
    )


def riders_query(schedule: Schedule, taken: list[int], room: int) -> Select:
    """Up to ``room`` parcels on the move, not due yet and not in ``taken``, whose next
    look is soonest: they ride along on a page that would leave with room (a page costs
    one credit however many numbers it carries). None read within ``SCHEDULE_MIN_S``."""
    p = Purchasing
    minimum = interval(schedule.min_s)
    return (
        select(*_COLUMNS)
        .where(*_followed(minimum))
        .where(
            p.delivery_status_code.in_([code.value for code in RIDE_ALONG_CODES]),
            p.id.not_in(taken),
        )
        .order_by(p.delivery_status_checked_at + wait_sql(schedule), p.id)
        .limit(room)
    )


def choose_due(
    session: Session, schedule: Schedule, limit: int
) -> tuple[list[Candidate], list[Skipped]]:
    """Up to ``limit`` due purchases, each with its search page: the purchases in
    order, ten distinct numbers to a page (two purchases of one number share it); a
    last page with room takes ride-alongs (:func:`riders_query`)."""
    rows = session.execute(due_query(schedule, limit)).all()
    pages: list[list[tuple[Match, str]]] = []
    numbers: list[set[str]] = []
    for row in rows:
        _add(pages, numbers, row)
    if pages and len(numbers[-1]) < japan_post.MAX_NUMBERS:
        room = japan_post.MAX_NUMBERS - len(numbers[-1])
        taken = [row.id for row in rows]
        # at most ``room`` riders: they all fit on the last page
        for row in session.execute(riders_query(schedule, taken, room)).all():
            _add(pages, numbers, row)
    candidates = []
    for page in pages:
        url = japan_post.search_url(list(dict.fromkeys(number for _, number in page)))
        candidates += [Candidate(match, url) for match, _ in page]
    return candidates, []


def _add(pages: list, numbers: list[set[str]], row: Row) -> None:
    """Put ``row``'s purchase on the last page, or on a new one once that is full."""
    purchasing_id, order_number, tracking_number, created_at = row
    number = normalize(tracking_number)
    match = Match(purchasing_id, order_number, None, created_at, tracking_number=number)
    full = pages and number not in numbers[-1] and len(numbers[-1]) == japan_post.MAX_NUMBERS
    if not pages or full:
        pages.append([])
        numbers.append(set())
    pages[-1].append((match, number))
    numbers[-1].add(number)
