"""Rows as other systems would insert them, for tests and benchmarks."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import Engine, insert, select

from shared.db.models import OfficialAccount, Purchasing

_orders = itertools.count(1)
_clock = itertools.count(1)
BASE_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def account(engine: Engine, email: str | None = "user@example.com") -> int:
    with engine.begin() as connection:
        return connection.execute(
            insert(OfficialAccount).values(email=email).returning(OfficialAccount.id)
        ).scalar_one()


def order_number(last_digit: int = 0) -> str:
    """A fresh valid order number ending in ``last_digit`` (the simulator's outcome)."""
    return f"W{next(_orders):09d}{last_digit}"


def purchase(engine: Engine, account_id: int | None, order: str | None = None, **columns) -> int:
    """A purchasing row; ``created_at`` increases with every call unless given."""
    values = {
        "order_number": order_number() if order is None else order,
        "official_account_id": account_id,
        "created_at": BASE_TIME + dt.timedelta(seconds=next(_clock)),
        **columns,
    }
    with engine.begin() as connection:
        return connection.execute(
            insert(Purchasing).values(**values).returning(Purchasing.id)
        ).scalar_one()


def column_of(engine: Engine, column, purchasing_id: int):
    with engine.connect() as connection:
        return connection.execute(select(column).where(Purchasing.id == purchasing_id)).scalar_one()
