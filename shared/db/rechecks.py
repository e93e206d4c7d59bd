"""The re-check delay (CONTRACT.md, Selection): a purchase whose attempt found no valid
tracking number waits ``RECHECK_BASE_S`` after its first attempt, doubling with each
further attempt, at most ``RECHECK_MAX_S``; measured on the database's clock."""

from __future__ import annotations

from sqlalchemy import func, literal
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import PurchaseCheck


def schedule_recheck(
    session: Session, purchasing_id: int, reason: str, base_s: float, max_s: float
) -> None:
    """Count one more attempt without a number and push the next check out."""
    table = PurchaseCheck.__table__

    def wait(attempts_before):  # seconds to wait after attempt number attempts_before + 1
        return func.least(literal(base_s) * func.power(2, attempts_before), literal(max_s))

    statement = insert(table).values(
        purchasing_id=purchasing_id,
        attempts=1,
        next_check_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, wait(0)),
        last_reason=reason[:1000],
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.purchasing_id],
        set_={
            "attempts": table.c.attempts + 1,
            "next_check_at": func.now()
            + func.make_interval(0, 0, 0, 0, 0, 0, wait(table.c.attempts)),
            "last_reason": statement.excluded.last_reason,
            "updated_at": func.now(),
        },
    )
    session.execute(statement)
