"""One tracking_job row as every service reads it, and the statement that reads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Select, String, func, select

from shared.db.models import TrackingBatch, TrackingJob
from shared.db.statuses import UNPUBLISHED
from shared.domain.urls import order_of

_jobs, _batches = TrackingJob.__table__, TrackingBatch.__table__


@dataclass(frozen=True)
class TrackingJobRow:
    """A tracking_job with its batch's uuid."""

    id: int
    custom_id: str
    #: its scraping job, once the create call was answered
    scraping_job_id: int | None
    status: str
    target_url: str
    purchasing_id: int | None
    batch_uuid: str
    #: create calls tried for it (the publisher's retry limit)
    publish_attempts: int = 0
    #: its pack's leader (itself if it leads one); None until it is given a pack
    pack_of: int | None = None

    @property
    def order_number(self) -> str:
        return order_of(self.target_url)

    @classmethod
    def of(cls, row: Sequence[Any]) -> TrackingJobRow:
        """The job of a row that starts with :data:`JOB_COLUMNS` (more may follow)."""
        return cls(*row[: len(_FIELDS)])


_FIELDS = fields(TrackingJobRow)
#: the columns of :class:`Job`, in its order
JOB_COLUMNS = (
    _jobs.c.id,
    _jobs.c.custom_id,
    _jobs.c.job_id,
    _jobs.c.status,
    _jobs.c.target_url,
    _jobs.c.purchasing_id,
    _batches.c.batch_uuid.cast(String()).label("batch_uuid"),
    _jobs.c.publish_attempts,
    _jobs.c.pack_of,
)
assert len(JOB_COLUMNS) == len(_FIELDS)


def select_jobs(*more: Any) -> Select[Any]:
    """Jobs as :class:`Job` rows (then ``more`` columns), with their batches joined."""
    return select(*JOB_COLUMNS, *more).join(_batches, _batches.c.id == _jobs.c.batch_id)


@dataclass(frozen=True)
class StatusCount:
    """How many tracking jobs have a status, and the age of the oldest of them."""

    count: int
    oldest_age_s: float


def jobs_by_task(db: Any, only: Sequence[str] | None = None) -> dict[tuple[str, str], StatusCount]:
    """Tracking jobs by (task, status), ``only`` these statuses if given, ages on the
    database's clock; one query (the metrics and ``trackfill status`` read it, and
    :func:`by_status` folds it)."""
    query = (
        select(
            _batches.c.task_name,
            _jobs.c.status,
            func.count(),
            func.extract("epoch", func.now() - func.min(_jobs.c.created_at)),
        )
        .join(_batches, _batches.c.id == _jobs.c.batch_id)
        .group_by(_batches.c.task_name, _jobs.c.status)
    )
    if only is not None:
        query = query.where(_jobs.c.status.in_(only))
    rows = db.execute(query).all()
    return {(task, status): StatusCount(n, float(age)) for task, status, n, age in rows}


def by_status(counts: Mapping[tuple[str, str], StatusCount]) -> dict[str, StatusCount]:
    """:func:`jobs_by_task` over every task: counts added, the oldest age kept."""
    folded: dict[str, StatusCount] = {}
    for (_, status), jobs in counts.items():
        seen = folded.get(status, StatusCount(0, 0.0))
        folded[status] = StatusCount(
            seen.count + jobs.count, max(seen.oldest_age_s, jobs.oldest_age_s)
        )
    return folded


def count_unpublished(db: Any, task_name: str, *narrower: Any) -> int:
    """Jobs of task ``task_name`` not given a scraping job yet (the publisher's), of
    those that also meet ``narrower``."""
    return db.execute(
        select(func.count())
        .select_from(_jobs)
        .join(_batches, _batches.c.id == _jobs.c.batch_id)
        .where(_jobs.c.status.in_(UNPUBLISHED), _batches.c.task_name == task_name, *narrower)
    ).scalar_one()
