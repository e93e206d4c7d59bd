"""What both halves of the ledger read under its lock: the database's clock, the API's
block, and the calls of the window that ends now."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db.models import ApiCall, QuotaState
from shared.quota.windows import in_window

#: The advisory lock every change to the ledger takes (the fast path's too).
LEDGER_LOCK = 0x7472_6B66_696C_6C02


def lock(session: Session) -> dt.datetime:
    """Take the ledger's lock for the transaction; the database's clock after it."""
    session.execute(select(func.pg_advisory_xact_lock(LEDGER_LOCK)))
    return session.execute(select(func.clock_timestamp())).scalar_one()


def blocked_until(session: Session) -> dt.datetime | None:
    """Until when the API said to wait (a 429's Retry-After), if it ever did."""
    return session.execute(
        select(QuotaState.blocked_until).where(QuotaState.id == 1)
    ).scalar_one_or_none()


def count_in_window(session: Session, span: dt.timedelta) -> int:
    """Calls in the window that ends now (the database's clock, read once: a volatile
    function in the condition would make PostgreSQL scan the whole table)."""
    now = select(func.clock_timestamp()).scalar_subquery()
    return session.execute(
        select(func.count()).where(in_window(ApiCall.at, now, span))
    ).scalar_one()
