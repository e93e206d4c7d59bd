"""Engines and sessions, built by functions: nothing connects at import time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

#: A pooled connection idle longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def make_engine(database_url: str, **kwargs: object) -> Engine:
    """An engine for ``database_url`` that checks connections idle for a while before use.

    A service thereby survives a database restart: a dead pooled connection is replaced
    instead of failing the next transaction. Unlike ``pool_pre_ping``, a connection
    given back less than :data:`PING_AFTER_IDLE_S` ago is not pinged: a busy service
    checks out a connection for every statement or two, and a ping each time was one
    round trip in three. A restart in that second fails one transaction, as one during
    a transaction always does; the error is an outage its caller retries, and it
    replaces every connection of the pool.
    """
    options: dict[str, object] = {"future": True}
    options.update(kwargs)
    engine = create_engine(database_url, **options)
    if not options.get("pool_pre_ping"):
        event.listen(engine, "checkin", _note_idle)
        event.listen(engine, "checkout", _pinger(engine))
    return engine


def _note_idle(dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _pinger(engine: Engine):
    dialect = engine.dialect

    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError(str(error)) from error  # the pool reconnects
            raise

    return ping_if_idle


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` that keep loaded values after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def autocommit(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """A connection on which every statement commits by itself, with no ``BEGIN`` and
    ``COMMIT`` round trips around it. A string of several statements sent in one execute
    runs as one transaction (PostgreSQL's implicit transaction of a simple query), each
    statement with a fresh snapshot: a short locked write in a single round trip."""
    with factory() as session:
        yield session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
