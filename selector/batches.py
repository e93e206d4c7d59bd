"""Batches and their jobs, written in the selection's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from selector.selection import Candidate
from shared.db.models import TrackingBatch, TrackingJob
from shared.tasks import TaskConfig


@dataclass(frozen=True)
class JobRef:
    """What a candidate.found message needs to say about one job."""

    id: int
    custom_id: str
    purchasing_id: int | None
    batch_uuid: str
    order_number: str


def create_batch(session: Session, task: TaskConfig, candidates: list[Candidate]) -> list[JobRef]:
    """A ``pending`` tracking_batch with one ``queued`` tracking_job per candidate."""
    batch_uuid = uuid.uuid4()
    short = batch_uuid.hex[:8]
    batch = TrackingBatch(
        batch_uuid=batch_uuid,
        file_path=f"{task.filename_prefix}{short}",
        task_name=task.name,
        total_jobs=len(candidates),
        status="pending",
    )
    session.add(batch)
    session.flush()
    jobs = [
        TrackingJob(
            batch_id=batch.id,
            purchasing_id=candidate.match.purchasing_id,
            custom_id=task.custom_id(short, index),
            target_url=candidate.url,
            index=index,
            status="queued",
        )
        for index, candidate in enumerate(candidates)
    ]
    session.add_all(jobs)
    session.flush()
    return [
        JobRef(
            job.id,
            job.custom_id,
            job.purchasing_id,
            str(batch_uuid),
            candidate.match.order_number.strip().upper(),
        )
        for job, candidate in zip(jobs, candidates, strict=True)
    ]


def unpublished_jobs(session: Session, task: TaskConfig, grace_s: float) -> list[JobRef]:
    """Queued jobs whose candidate.found was never confirmed (the process died between
    commit and publish), older than ``grace_s`` so a pass still publishing is left alone."""
    rows = session.execute(
        select(TrackingJob, TrackingBatch.batch_uuid)
        .join(TrackingBatch, TrackingBatch.id == TrackingJob.batch_id)
        .where(
            TrackingJob.status == "queued",
            TrackingJob.published_at.is_(None),
            TrackingJob.job_id.is_(None),
            TrackingBatch.task_name == task.name,
            TrackingJob.created_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, grace_s),
        )
        .order_by(TrackingJob.id)
    ).all()
    return [
        JobRef(job.id, job.custom_id, job.purchasing_id, str(batch_uuid), _order_of(job.target_url))
        for job, batch_uuid in rows
    ]


def mark_published(session: Session, job_ids: list[int]) -> None:
    if job_ids:
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.id.in_(job_ids), TrackingJob.published_at.is_(None))
            .values(published_at=func.now())
        )


def _order_of(url: str) -> str:
    parts = url.split("/")
    return parts[parts.index("vieworder") + 1] if "vieworder" in parts else "?"
