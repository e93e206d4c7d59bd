"""The re-check delay (docs/selection.md): a purchase whose attempt found no valid
tracking number waits ``RECHECK_BASE_S`` after its first attempt, doubling with each
further attempt, at most ``RECHECK_MAX_S``; measured on the database's clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import NEEDS_TRACKING, PurchaseCheck, Purchasing, TrackingJob


def _schedule_statement():
    """Built once (it runs for every job that ends without a number)."""
    table = PurchaseCheck.__table__
    base, most = bindparam("p_base_s", type_=Float), bindparam("p_max_s", type_=Float)

    def next_check(attempts_before):  # now + the wait after attempt attempts_before + 1
        wait = func.least(base * func.power(2, attempts_before), most)
        return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, wait)

    purchase = bindparam("p_purchasing_id")
    # the attempts began when the purchase's first job was made (its first look)
    first_job = (
        select(func.min(TrackingJob.created_at))
        .where(TrackingJob.purchasing_id == purchase)
        .scalar_subquery()
    )
    statement = insert(table).values(
        purchasing_id=purchase,
        attempts=1,
        next_check_at=next_check(0),
        last_reason=bindparam("p_reason"),
        first_attempt_at=func.coalesce(first_job, func.now()),
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c.purchasing_id],
        set_={
            "attempts": table.c.attempts + 1,
            "next_check_at": next_check(table.c.attempts),
            "last_reason": statement.excluded.last_reason,
            "updated_at": func.now(),
        },
    )


_SCHEDULE = _schedule_statement()


@dataclass(frozen=True)
class Recheck:
    """The re-check delay's settings (``RECHECK_BASE_S``, ``RECHECK_MAX_S``)."""

    base_s: float
    max_s: float

    def schedule(self, session: Session, purchasing_id: int, reason: str) -> None:
        """See :func:`schedule_recheck`."""
        schedule_recheck(session, purchasing_id, reason, self.base_s, self.max_s)


def schedule_recheck(
    session: Session, purchasing_id: int, reason: str, base_s: float, max_s: float
) -> None:
    """Count one more attempt without a number and push the next check out."""
    session.execute(
        _SCHEDULE,
        {
            "p_purchasing_id": purchasing_id,
            "p_reason": reason[:1000],
            "p_base_s": base_s,
            "p_max_s": max_s,
        },
    )


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
