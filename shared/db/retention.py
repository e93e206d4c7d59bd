"""Retention: the tables that grow with every call and every notification are pruned.

- ``api_call`` (the quota ledger) keeps two of its windows (its rule reads one, plus the
  margin) and every create call of a job still without a scraping job (the publisher's
  settling of a lost create reads it, however old).
- ``processed_notification`` keeps ``PROCESSED_KEEP_S``: long enough for a late duplicate
  webhook to hit its key.
- ``sync_log`` keeps ``SYNC_LOG_KEEP_S``.
- ``tracking_update_outbox`` keeps a relayed event ``PROCESSED_KEEP_S`` (an operator can
  still see what was told), and every event not relayed yet, however old.

Each delete goes by an index on its time column, in chunks, so that a first run on a
large table neither holds long locks nor runs unbounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import Float, bindparam, delete, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import (
    ApiCall,
    ProcessedNotification,
    SyncLog,
    TrackingJob,
    TrackingUpdateOutbox,
)
from shared.db.session import transaction
from shared.db.statuses import UNPUBLISHED

CHUNK = 10_000
#: chunks per table and run: a run stays short; the next run takes the rest
MOST_CHUNKS = 20


@dataclass(frozen=True)
class Kept:
    """How long each table keeps its rows, in seconds."""

    api_calls: float
    processed: float
    sync_logs: float
    outbox: float


@dataclass(frozen=True)
class Pruned:
    api_calls: int
    processed: int
    sync_logs: int
    outbox: int


def _older_than(column):
    return column < func.now() - func.make_interval(
        0, 0, 0, 0, 0, 0, bindparam("p_keep_s", type_=Float)
    )


_still_settling = exists().where(
    TrackingJob.custom_id == ApiCall.custom_id,
    TrackingJob.scraping_job_id.is_(None),
    TrackingJob.status.in_(UNPUBLISHED),
)
_PRUNABLE = {
    "api_calls": (
        ApiCall,
        _older_than(ApiCall.at) & ~((ApiCall.kind == "create") & _still_settling),
    ),
    "processed": (ProcessedNotification, _older_than(ProcessedNotification.processed_at)),
    "sync_logs": (SyncLog, _older_than(SyncLog.timestamp)),
    # relayed_at NULL (not relayed yet) is never older than anything
    "outbox": (TrackingUpdateOutbox, _older_than(TrackingUpdateOutbox.relayed_at)),
}


def prune(sessions: sessionmaker[Session], kept: Kept) -> Pruned:
    """Delete what each table no longer needs (see the module's docstring)."""
    keep_s = asdict(kept)
    done = {name: _prune_one(sessions, name, keep_s[name]) for name in _PRUNABLE}
    return Pruned(**done)


def _prune_one(sessions: sessionmaker[Session], name: str, keep_s: float) -> int:
    table, old = _PRUNABLE[name]
    chunk = select(table.id).where(old).limit(CHUNK).scalar_subquery()
    statement = delete(table).where(table.id.in_(chunk))
    total = 0
    for _ in range(MOST_CHUNKS):
        with transaction(sessions) as session:
            count = session.execute(statement, {"p_keep_s": keep_s}).rowcount
        total += count
        if count < CHUNK:
            break
    return total
