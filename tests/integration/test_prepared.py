"""Prepared statements on real PostgreSQL: prepared once per connection, by name."""

from __future__ import annotations

import pytest
from sqlalchemy import BigInteger, func, select, text

from shared.db.models import Purchasing
from shared.db.prepared import Prepared, parameter
from tests.support import rows

pytestmark = pytest.mark.integration

AFTER = Prepared(
    "trackfill_test_orders_after",
    select(Purchasing.order_number)
    .where(Purchasing.order_number.ilike("w%"), Purchasing.id > parameter(1, BigInteger()))
    .order_by(Purchasing.id),
    ("bigint",),
)


def prepared_here(connection) -> int:
    return connection.execute(
        select(func.count())
        .select_from(text("pg_prepared_statements"))
        .where(text("name = 'trackfill_test_orders_after'"))
    ).scalar_one()


def test_a_statement_is_prepared_once_and_runs_with_its_constants_and_parameters(db):
    account = rows.account(db)
    first, second = rows.purchase(db, account), rows.purchase(db, account)
    rows.purchase(db, account, order="X0000000001")  # not a w%: the quoted constant holds
    with db.connect() as connection:
        everything = AFTER.execute(connection, 0)
        later = AFTER.execute(connection, first)  # a second PREPARE would fail here
        assert prepared_here(connection) == 1
    assert [row.order_number for row in later] == [everything[1].order_number]
    assert len(everything) == 2 and second > first


def test_a_replaced_connection_prepares_the_statement_again(db):
    rows.purchase(db, rows.account(db))
    with db.connect() as connection:
        assert len(AFTER.execute(connection, 0)) == 1
        connection.invalidate()  # as after a database restart: a new connection next time
    with db.connect() as connection:
        assert prepared_here(connection) == 0
        assert len(AFTER.execute(connection, 0)) == 1
