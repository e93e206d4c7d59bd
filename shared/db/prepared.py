"""Statements PostgreSQL plans once per connection (``PREPARE`` / ``EXECUTE``).

Planning the selection query takes longer than running it (about 0.5 ms against 0.2 ms
on a million purchases, bench/selector.py), and psycopg2 cannot prepare statements
itself. A :class:`Prepared` statement is prepared once on each database connection and
then executed by name. Its constants are inlined when it is prepared; what changes from
one execution to the next is written ``$1``, ``$2``... (see :func:`parameter`) and
passed to :meth:`Prepared.execute`.

A prepared statement outlives the transaction that prepared it (even a rolled-back one)
and dies with its connection; the set of names prepared on a connection is kept in the
pool's ``info`` for that connection, which a replaced connection starts without.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, literal_column
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeEngine

_PREPARED = "trackfill.prepared"
_AS_IS = {"no_parameters": True}


def parameter(position: int, type_: TypeEngine[Any]) -> ColumnElement[Any]:
    """The ``position``-th (from 1) parameter of a prepared statement, of ``type_``."""
    return literal_column(f"${position}", type_)


@dataclass(frozen=True)
class Prepared:
    """``statement`` under ``name``; ``types`` are the SQL types of ``$1``, ``$2``..."""

    name: str
    statement: Executable
    types: tuple[str, ...] = ()

    def execute(self, connection: Connection, *args: Any) -> Sequence[Row[Any]]:
        """The rows of one execution with ``args``; prepares on first use."""
        prepared = connection.info.setdefault(_PREPARED, set())
        if self.name not in prepared:
            # no_parameters: the body holds quoted constants such as 'w%', not placeholders
            connection.exec_driver_sql(self.sql(connection), execution_options=_AS_IS)
            prepared.add(self.name)
        marks = f"({', '.join(['%s'] * len(args))})" if args else ""
        return connection.exec_driver_sql(f"EXECUTE {self.name}{marks}", tuple(args)).all()

    def sql(self, connection: Connection) -> str:
        """The ``PREPARE`` command, constants quoted by the driver."""
        compiled = self.statement.compile(
            dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
        )
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            body = cursor.mogrify(str(compiled), compiled.params).decode()
        finally:
            cursor.close()
        types = f"({', '.join(self.types)})" if self.types else ""
        return f"PREPARE {self.name}{types} AS {body}"
