"""When a purchase without a number is looked at next (docs/schedule.md): each look that
found none is recorded in ``purchase_check`` with what the page said, and the schedule's
answer, on the database's clock."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import NEEDS_TRACKING, PurchaseCheck, Purchasing, TrackingJob
from shared.domain.schedule import Looks, Schedule, next_look


@dataclass(frozen=True)
class Page:
    """What a page read said that the schedule reads: Apple's state or the carrier's
    status, and Apple's estimate (its first and last day)."""

    status: str | None = None
    estimate: tuple[dt.date, dt.date] | None = None


_UPSERT = insert(PurchaseCheck.__table__)
_UPSERT = _UPSERT.on_conflict_do_update(
    index_elements=[PurchaseCheck.purchasing_id],
    set_={
        column: _UPSERT.excluded[column]
        for column in ("attempts", "next_check_at", "last_reason", "last_status")
        + ("estimate_from", "estimate_to", "updated_at")
    },
)


@dataclass(frozen=True)
class Recheck:
    """Records a look that found no number and when the next one is (by
    :func:`shared.domain.schedule.next_look`). The expiry is left to the selection
    (:func:`expired_before`), where a changed ``RECHECK_EXPIRE_S`` takes effect at once,
    for the purchases given up before too."""

    schedule: Schedule

    def record(
        self, session: Session, purchasing_id: int, reason: str, page: Page | None = None
    ) -> dt.datetime | None:
        """Count one more look for ``purchasing_id`` (``page``: what it read; None: it
        read no page, and what the last one said stands) and set its next one, on the
        database's clock; returns it (None: never)."""
        now, row = _current(session, purchasing_id)
        status, estimate = (row.last_status, _span(row)) if row else (None, None)
        if page is not None:
            status, estimate = page.status, page.estimate or estimate
        attempts = (row.attempts if row else 0) + 1
        first_at = row.first_attempt_at if row else _first_job(session, purchasing_id) or now
        looks = Looks(first_at, now, attempts, status, estimate)
        at = next_look(looks, now, replace(self.schedule, expire_s=math.inf))
        session.execute(
            _UPSERT.values(
                purchasing_id=purchasing_id,
                attempts=attempts,
                next_check_at=at,
                last_reason=reason[:1000],
                last_status=status,
                estimate_from=estimate[0] if estimate else None,
                estimate_to=estimate[1] if estimate else None,
                first_attempt_at=first_at,
                updated_at=now,
            )
        )
        return at


def _current(session: Session, purchasing_id: int) -> tuple[dt.datetime, Any]:
    """The database's now, and the purchase's check row (locked) or None."""
    now = session.execute(select(func.now())).scalar_one()
    row = session.execute(
        select(PurchaseCheck).where(PurchaseCheck.purchasing_id == purchasing_id).with_for_update()
    ).scalar_one_or_none()
    return now, row


def _first_job(session: Session, purchasing_id: int) -> dt.datetime | None:
    """The attempts began when the purchase's first job was made (its first look)."""
    return session.execute(
        select(func.min(TrackingJob.created_at)).where(TrackingJob.purchasing_id == purchasing_id)
    ).scalar_one()


def _span(row: PurchaseCheck) -> tuple[dt.date, dt.date] | None:
    if row.estimate_from is None or row.estimate_to is None:
        return None
    return row.estimate_from, row.estimate_to


def expired_before(expire_s: Any) -> Any:
    """A purchase's attempts began more than ``expire_s`` ago: it is given up
    (docs/giving-up.md). ``expire_s`` a value or a SQL expression."""
    return PurchaseCheck.first_attempt_at < func.now() - func.make_interval(
        0, 0, 0, 0, 0, 0, expire_s
    )


def count_expired(db: Session | Connection, expire_s: float) -> int:
    """Purchases given up, still without a tracking number."""
    return db.execute(
        select(func.count())
        .select_from(PurchaseCheck)
        .join(Purchasing, Purchasing.id == PurchaseCheck.purchasing_id)
        .where(NEEDS_TRACKING, expired_before(expire_s))
    ).scalar_one()
