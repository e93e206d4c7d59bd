"""The quota ledger's common cases, each in one round trip to PostgreSQL.

Most calls are follow-ups (status check, download) made at once, far from the cap, and
most answers agree with the ledger. The general path in :mod:`shared.quota`
spends a transaction of about six statements on each; here each is one string sent in
autocommit mode (see :func:`shared.db.session.autocommit`). A reservation that is not
the common case (the window nearly full, a block in force) returns None, and the caller
takes the general path, which decides; answers return the window's count, and the caller
tightens the ledger where the API counts more calls than it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Interval, bindparam, literal_column
from sqlalchemy.dialects import postgresql

from shared.db.models import ApiCall
from shared.quota.store import LEDGER_LOCK
from shared.quota.windows import around, in_window


def _sql(condition) -> str:
    """The ledger's rule as the text of one condition, for the statements below: the
    same expression every other count uses, compiled once (``now_.t`` is the moment the
    statement reads, ``%(span)s`` the window)."""
    return str(condition.compile(dialect=postgresql.psycopg2.dialect()))


_NOW = literal_column("now_.t")
_SPAN = bindparam("span", type_=Interval)
_AROUND_NOW = _sql(around(ApiCall.at, _NOW, _SPAN))
_IN_WINDOW = _sql(in_window(ApiCall.at, _NOW, _SPAN))
# The lock is taken by a statement of its own: the INSERT's snapshot is taken after it,
# so it sees every call the previous holder of the lock committed.
_RESERVE_NOW = f"""
SELECT pg_advisory_xact_lock({LEDGER_LOCK});
INSERT INTO api_call (kind, at, custom_id, used_at, job_id)
SELECT %(kind)s, now_.t, %(custom_id)s, CASE WHEN %(use)s THEN now_.t END, %(job_id)s
FROM (SELECT clock_timestamp() AS t) AS now_
WHERE NOT EXISTS (
        SELECT 1 FROM api_quota_state WHERE id = 1 AND blocked_until > now_.t)
  AND (SELECT count(*) FROM api_call WHERE {_AROUND_NOW}) + 1 <= %(calls)s
RETURNING id, at
"""

# the answers of one or more calls, then the window's count (the result is the last
# statement's)
_RECORD_OUTCOMES = (
    """
UPDATE api_call SET status = v.status, outcome = v.outcome
FROM unnest(%(ids)s::bigint[], %(statuses)s::int[], %(outcomes)s::text[]) AS v(id, status, outcome)
WHERE api_call.id = v.id;
SELECT count(*) FROM api_call, (SELECT clock_timestamp() AS t) AS now_
WHERE """
    + _IN_WINDOW
)


def reserve_now(
    connection: Connection,
    kind: str,
    custom_id: str | None,
    use: bool,
    span: dt.timedelta,
    calls: int,
    scraping_job_id: int | None = None,
) -> tuple[int, dt.datetime] | None:
    """Reserve a call of ``kind`` for now (``use``: marked used too) if no block is in
    force and fewer than ``calls - 1`` calls are reserved within ``span`` either side
    of now, so that every window holding now has room; else None, and nothing written."""
    row = connection.exec_driver_sql(
        _RESERVE_NOW,
        {
            "kind": kind,
            "custom_id": custom_id,
            "use": use,
            "span": span,
            "calls": calls,
            "job_id": scraping_job_id,
        },
    ).first()
    return (row[0], row[1]) if row else None


def record_outcomes(
    connection: Connection,
    outcomes: list[tuple[int | None, int | None, str]],
    span: dt.timedelta,
) -> int:
    """Write calls' answers (id, status, outcome) in one round trip; the number of calls
    in the window ending now (to compare with what the API says is left)."""
    ids, statuses, texts = zip(*outcomes, strict=True)
    return connection.exec_driver_sql(
        _RECORD_OUTCOMES,
        {
            "ids": list(ids),
            "statuses": list(statuses),
            "outcomes": list(texts),
            "span": span,
        },
    ).scalar_one()
