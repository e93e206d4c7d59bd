"""The engine's connection checks, on the real PostgreSQL: a pooled connection whose
server process ended (a database restart, an operator's pg_terminate_backend) is
replaced before use when it has been idle, and fails one transaction at most otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from shared.db import session as db_session
from shared.db.session import make_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def pooled(db) -> Iterator[Engine]:
    engine = make_engine(db.url, pool_size=1, max_overflow=0)  # one connection: the same one
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(db: Engine, pid: int) -> None:
    with db.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_an_idle_connection_that_died_is_replaced_before_use(db, pooled, monkeypatch):
    first = backend_pid(pooled)
    terminate(db, first)
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 0.0)  # it has been idle long enough
    assert backend_pid(pooled) != first  # no error: the ping found it dead


def test_a_connection_given_back_a_moment_ago_is_used_without_a_ping(db, pooled, monkeypatch):
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 60.0)
    first = backend_pid(pooled)
    terminate(db, first)
    with pytest.raises(OperationalError):  # one transaction fails: an outage, retried
        backend_pid(pooled)
    assert backend_pid(pooled) != first  # and the pool has replaced it
