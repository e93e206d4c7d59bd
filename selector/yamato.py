"""The Yamato refresh's selection (docs/refresh.md): purchases whose Yamato parcel is
under way, each looked at through its Apple order page when the schedule says so.

A purchase is due when its order number starts with W, its carrier (from
``shipping_method``) is Yamato, its tracking number is a valid 12-digit number, its
status is not done, its account has an e-mail address, no job of any task is in flight
for it, and the schedule's next look (``shared.domain.schedule.yamato_next_look``) after
its latest look or attempt has come. Soonest due first.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.types import Date

from selector.selection import HAS_EMAIL, Candidate, Match, Skipped, choose
from shared.db.models import (
    MAY_NEED_REFRESH,
    OfficialAccount,
    Purchasing,
    TrackingBatch,
    TrackingJob,
)
from shared.db.sql import job_in_flight
from shared.db.sql import seconds as _seconds
from shared.domain.schedule import YAMATO_HOUR, YAMATO_OUT_S, Schedule
from shared.domain.statuses import DONE_CODES, StatusCode, not_done_sql
from shared.domain.tracking_numbers import Carrier, carrier_sql, domestic_12_sql, normalize
from shared.tasks import YAMATO_STATUS_REFRESH


def next_look_sql(
    last_at: ColumnElement, code: ColumnElement, first_day: ColumnElement, schedule: Schedule
) -> ColumnElement:
    """``yamato_next_look`` in SQL, for columns (NULL where it returns None; a test holds
    the two equal)."""
    tokyo = func.timezone("Asia/Tokyo", last_at)  # the local time, without a zone
    day = cast(tokyo - _seconds(YAMATO_HOUR * 3600), Date) + 1
    day = func.greatest(day, first_day)  # greatest ignores a NULL first day
    at = func.timezone("Asia/Tokyo", day + func.make_time(YAMATO_HOUR, 0, 0))
    wait = case(
        (code == StatusCode.OUT_FOR_DELIVERY.value, last_at + _seconds(YAMATO_OUT_S)),
        else_=at,
    )
    capped = func.least(wait, last_at + _seconds(schedule.far_s))
    soonest = func.greatest(capped, last_at + _seconds(schedule.min_s))
    done = code.in_([c.value for c in DONE_CODES])
    return case((done, None), else_=soonest)


def _last_look() -> ColumnElement:
    """The purchase's latest status read, or its latest Yamato refresh begun (a page that
    failed counts as a look: it is not asked for again at once); NULL: neither."""
    p, job = Purchasing, TrackingJob
    attempt = (
        select(func.max(job.created_at))
        .join(TrackingBatch, TrackingBatch.id == job.batch_id)
        .where(job.purchasing_id == p.id, TrackingBatch.task_name == YAMATO_STATUS_REFRESH.name)
        .scalar_subquery()
    )
    return func.greatest(p.delivery_status_checked_at, attempt)


def due_query(schedule: Schedule, limit: int) -> Select:
    """The purchases due a Yamato look, soonest due first (at most ``limit``)."""
    p, account = Purchasing, OfficialAccount
    first_day = func.coalesce(p.estimated_delivery_from, p.estimated_delivery_date)
    next_at = next_look_sql(_last_look(), p.delivery_status_code, first_day, schedule)
    return (
        select(p.id, p.order_number, account.email, p.created_at, p.tracking_number)
        .join(account, account.id == p.official_account_id)
        .where(
            MAY_NEED_REFRESH,
            p.order_number.ilike("w%"),
            carrier_sql(p.shipping_method, Carrier.YAMATO),
            domestic_12_sql(p.tracking_number),
            not_done_sql(p.latest_delivery_status),
            HAS_EMAIL,
            ~job_in_flight(),
            next_at.is_(None) | (next_at <= func.now()),  # NULL: never looked at
        )
        .order_by(next_at.nulls_first(), p.id)
        .limit(limit)
    )


def choose_yamato_due(
    session: Session, schedule: Schedule, limit: int
) -> tuple[list[Candidate], list[Skipped]]:
    """Up to ``limit`` due purchases, each with its Apple order page (an unsafe one is
    skipped with its reason)."""
    rows = session.execute(due_query(schedule, limit)).all()
    matches = (
        Match(row.id, row.order_number, row.email, row.created_at, normalize(row.tracking_number))
        for row in rows
    )
    return choose(matches, limit)
