"""Engines and sessions, built by functions: nothing connects at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(database_url: str, **kwargs: object) -> Engine:
    """An engine for ``database_url`` that checks connections before use.

    ``pool_pre_ping`` lets a service survive a database restart: a dead pooled
    connection is replaced instead of failing the next transaction.
    """
    options: dict[str, object] = {"pool_pre_ping": True, "future": True}
    options.update(kwargs)
    return create_engine(database_url, **options)


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
