"""Batches and their jobs (the selector's passes and manual requests write them alike)."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, Row, bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session

from shared.db import sync_log
from shared.db.jobs import TrackingJobRow, select_jobs
from shared.db.models import TrackingBatch, TrackingJob
from shared.db.rechecks import Recheck
from shared.db.statuses import FINAL_BATCH_STATUSES, BatchStatus, JobStatus
from shared.tasks import TRACKING_TASK_CONFIGS, TaskConfig

#: Serialises everything that makes jobs: selection passes (daemon, manual runs,
#: replicas) and the publisher's manual requests. Each then sees the jobs the one before
#: committed, so no two of them make a job in flight for the same purchase (the unique
#: index would refuse the second).
BATCHES_LOCK = 0x7472_6B66_696C_6C01  # "trkfill" + 1


def lock_batches(session: Session) -> None:
    """Take :data:`BATCHES_LOCK` until ``session``'s transaction ends; call it before
    looking at which purchases have a job in flight."""
    session.execute(select(func.pg_advisory_xact_lock(BATCHES_LOCK)))


@dataclass(frozen=True)
class NewJob:
    purchasing_id: int | None
    order_number: str
    url: str


def create_batch(
    session: Session, task: TaskConfig, new_jobs: list[NewJob], batch_uuid: uuid.UUID | None = None
) -> list[TrackingJobRow]:
    """A ``pending`` tracking_batch with one ``queued`` tracking_job per new job (two
    statements: a pass writes them on its hot path)."""
    batch_uuid = batch_uuid or uuid.uuid4()
    batch_id = _insert_batch(session, task, batch_uuid, len(new_jobs))
    rows = _job_rows(task, batch_id, batch_uuid.hex[:8], new_jobs)
    ids = (
        session.execute(
            insert(TrackingJob).returning(TrackingJob.id, sort_by_parameter_order=True), rows
        )
        .scalars()
        .all()
    )
    return [
        TrackingJobRow(
            tracking_job_id,
            row["custom_id"],
            None,
            JobStatus.QUEUED,
            row["target_url"],
            row["purchasing_id"],
            str(batch_uuid),
        )
        for tracking_job_id, row in zip(ids, rows, strict=True)
    ]


def _insert_batch(session: Session, task: TaskConfig, batch_uuid: uuid.UUID, total: int) -> int:
    short = batch_uuid.hex[:8]
    return session.execute(
        insert(TrackingBatch)
        .values(
            batch_uuid=batch_uuid,
            file_path=f"{task.filename_prefix}{short}",
            task_name=task.name,
            total_jobs=total,
            status=BatchStatus.PENDING,
        )
        .returning(TrackingBatch.id)
    ).scalar_one()


def _job_rows(
    task: TaskConfig, batch_id: int, short: str, new_jobs: list[NewJob]
) -> list[dict[str, Any]]:
    return [
        {
            "batch_id": batch_id,
            "purchasing_id": new.purchasing_id,
            "custom_id": task.custom_id(short, index),
            "target_url": new.url,
            "index": index,
            "status": JobStatus.QUEUED,
        }
        for index, new in enumerate(new_jobs)
    ]


def unpublished_jobs(session: Session, task: TaskConfig, grace_s: float) -> list[TrackingJobRow]:
    """Queued jobs whose candidate.found was never confirmed (the process died between
    commit and publish), older than ``grace_s`` so a pass still publishing is left alone."""
    rows = session.execute(
        select_jobs()
        .where(
            TrackingJob.status == JobStatus.QUEUED,
            TrackingJob.published_at.is_(None),
            TrackingJob.scraping_job_id.is_(None),
            TrackingBatch.task_name == task.name,
            TrackingJob.created_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, grace_s),
        )
        .order_by(TrackingJob.id)
    ).all()
    return [TrackingJobRow.of(row) for row in rows]


def mark_published(session: Session, job_ids: list[int]) -> None:
    if job_ids:
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.id.in_(job_ids), TrackingJob.published_at.is_(None))
            .values(published_at=func.now())
        )


def _recount_statements() -> tuple[Executable, Executable]:
    """Built once: building and keying a statement costs more Python than running it,
    and a batch is recounted each time one of its jobs ends."""
    batches, jobs = TrackingBatch.__table__, TrackingJob.__table__
    lock = (
        select(batches.c.id, batches.c.status)
        .where(batches.c.batch_uuid == bindparam("batch_uuid"))
        .with_for_update()
    )
    counts = (
        select(
            jobs.c.batch_id,
            func.count().filter(jobs.c.status == JobStatus.COMPLETED).label("completed"),
            func.count().filter(jobs.c.status == JobStatus.FAILED).label("failed"),
        )
        .where(jobs.c.batch_id == bindparam("batch_id"))
        .group_by(jobs.c.batch_id)
        .subquery()
    )
    ended = case(
        (counts.c.failed == 0, BatchStatus.COMPLETED),
        (counts.c.completed == 0, BatchStatus.FAILED),
        else_=BatchStatus.PARTIAL,
    )
    recount = (
        update(batches)
        .where(batches.c.id == counts.c.batch_id)  # the recount's job is one of its jobs
        .values(
            completed_jobs=counts.c.completed,
            failed_jobs=counts.c.failed,
            status=case(
                (batches.c.status.in_(FINAL_BATCH_STATUSES), batches.c.status),
                (counts.c.completed + counts.c.failed < batches.c.total_jobs, batches.c.status),
                else_=ended,
            ),
        )
        .returning(*batches.c)
    )
    return lock, recount


_LOCK_BATCH, _RECOUNT_BATCH = _recount_statements()


def recount_batch(session: Session, batch_uuid: uuid.UUID) -> bool:
    """completed/failed counts from the jobs themselves (idempotent), and the final
    status once every job has ended; True if the batch ended in this call, which is
    recorded in sync_log (the task's ``..._completed``) in the same transaction."""
    batch_id, before = session.execute(_LOCK_BATCH, {"batch_uuid": batch_uuid}).one()
    # a statement of its own after the lock: its snapshot holds every job ended before
    batch = session.execute(_RECOUNT_BATCH, {"batch_id": batch_id}).one()
    if before in FINAL_BATCH_STATUSES or batch.status not in FINAL_BATCH_STATUSES:
        return False
    _record_end(session, batch)
    return True


def _record_end(session: Session, batch: Row[Any]) -> None:
    jobs = session.execute(
        select(TrackingJob.custom_id, TrackingJob.status, TrackingJob.error, TrackingJob.rejected)
        .where(TrackingJob.batch_id == batch.id)
        .order_by(TrackingJob.index)
    ).all()
    rejected = Counter(rule for job in jobs for rule in (job.rejected or {}))
    short = batch.batch_uuid.hex[:8]
    sync_log.record(
        session,
        TRACKING_TASK_CONFIGS[batch.task_name].completed,
        batch.status == BatchStatus.COMPLETED,
        f"TrackingBatch {short} {batch.status}: {batch.completed_jobs} completed, "
        f"{batch.failed_jobs} failed of {batch.total_jobs}",
        {
            "batch_uuid": str(batch.batch_uuid),
            "status": batch.status,
            "total_jobs": batch.total_jobs,
            "completed_jobs": batch.completed_jobs,
            "failed_jobs": batch.failed_jobs,
            "failed": {job.custom_id: job.error for job in jobs if job.status == JobStatus.FAILED},
            "rejected_values": dict(rejected),
        },
    )


def fail_jobs(
    session: Session, where: Any, reason: str, task: TaskConfig | None, recheck: Recheck
) -> int:
    """End the jobs of ``task`` that ``where`` selects ``failed`` with ``reason``, and
    recount their batches. If the task seeks tracking numbers, each purchase waits its
    re-check delay; a refresh's purchase keeps its refresh interval, as when the
    ingestor fails one. How many ended."""
    failed = session.execute(
        update(TrackingJob)
        .where(where)
        .values(status=JobStatus.FAILED, error=reason[:2000], completed_at=func.now())
        .returning(TrackingJob.purchasing_id, TrackingJob.batch_id)
    ).all()
    if task is None or task.seeks_number:
        for purchasing_id, _ in failed:
            if purchasing_id is not None:
                recheck.record(session, purchasing_id, reason)
    batches = session.execute(
        select(TrackingBatch.batch_uuid).where(TrackingBatch.id.in_({b for _, b in failed}))
    ).scalars()
    for batch_uuid in sorted(batches):
        recount_batch(session, uuid.UUID(str(batch_uuid)))
    return len(failed)
