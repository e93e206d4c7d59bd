"""The ingestor's database work: find a notification's job, and end it in one transaction
with everything that follows (purchase, re-check, batch counts, the processed mark)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import String, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from ingestor.records import Scraped
from shared.contracts import JobCompleted
from shared.db.batches import recount_batch
from shared.db.models import ProcessedNotification, Purchasing, TrackingBatch, TrackingJob
from shared.db.rechecks import schedule_recheck
from shared.db.session import transaction

ENDED = ("completed", "failed")


@dataclass(frozen=True)
class JobRow:
    id: int
    custom_id: str
    job_id: int | None
    status: str
    target_url: str
    purchasing_id: int | None
    batch_uuid: str
    #: this very notification (job id and custom_id) was processed before
    processed: bool = False


@dataclass(frozen=True)
class Ending:
    """How a job ends: ``failure`` (the job fails with it) or ``scraped`` values."""

    failure: str | None = None
    scraped: Scraped | None = None

    @property
    def needs_recheck(self) -> bool:
        return self.failure is not None or self.scraped is None or self.scraped.needs_recheck

    def reason(self) -> str:
        if self.failure:
            return self.failure
        if self.scraped and self.scraped.rejected:
            return "rejected: " + ", ".join(sorted(self.scraped.rejected))
        status = self.scraped.delivery_status if self.scraped else None
        return f"no tracking number yet ({status or 'no status'})"


@dataclass(frozen=True)
class Recheck:
    base_s: float
    max_s: float


class Jobs:
    def __init__(self, sessions: sessionmaker[Session], recheck: Recheck):
        self._sessions = sessions
        self._recheck = recheck

    def find(self, event: JobCompleted) -> JobRow | None:
        """The notification's job (by custom_id), and whether it was processed before."""
        with self._sessions() as session:
            row = session.execute(
                select(
                    TrackingJob.id,
                    TrackingJob.custom_id,
                    TrackingJob.job_id,
                    TrackingJob.status,
                    TrackingJob.target_url,
                    TrackingJob.purchasing_id,
                    TrackingBatch.batch_uuid.cast(String()),
                    _processed(event).exists(),
                )
                .join(TrackingBatch, TrackingBatch.id == TrackingJob.batch_id)
                .where(TrackingJob.custom_id == event.custom_id)
            ).first()
        return JobRow(*row) if row else None

    def finish(self, job: JobRow, event: JobCompleted, ending: Ending) -> float | None:
        """End ``job`` as ``ending`` says; the seconds since the job was created (its
        selection), or None (and nothing changed) if this notification was processed
        before or the job had already ended."""
        with transaction(self._sessions) as session:
            marked = session.execute(
                insert(ProcessedNotification)
                .values(
                    scrapingjob_id=event.scrapingjob_id,
                    custom_id=event.custom_id,
                    status=event.status,
                    outcome=ending.reason()[:1000] if ending.needs_recheck else "filled",
                )
                .on_conflict_do_nothing()
                .returning(ProcessedNotification.id)
            ).first()
            current, age = session.execute(
                select(TrackingJob.status, func.now() - TrackingJob.created_at)
                .where(TrackingJob.id == job.id)
                .with_for_update()
            ).one()
            if marked is None or current in ENDED:
                return None
            rejected = ending.scraped.rejected if ending.scraped else {}
            if ending.scraped is not None and job.purchasing_id is not None:
                rejected = {**rejected, **_fill(session, job.purchasing_id, ending.scraped)}
            session.execute(
                update(TrackingJob)
                .where(TrackingJob.id == job.id)
                .values(
                    status="failed" if ending.failure else "completed",
                    error=ending.failure[:2000] if ending.failure else None,
                    rejected=rejected or None,
                    completed_at=func.now(),
                )
            )
            if ending.needs_recheck and job.purchasing_id is not None:
                schedule_recheck(
                    session,
                    job.purchasing_id,
                    ending.reason(),
                    self._recheck.base_s,
                    self._recheck.max_s,
                )
            recount_batch(session, uuid.UUID(job.batch_uuid))
            return age.total_seconds()


def _processed(event: JobCompleted):
    return select(ProcessedNotification.id).where(
        ProcessedNotification.scrapingjob_id == event.scrapingjob_id,
        ProcessedNotification.custom_id == event.custom_id,
    )


def _fill(session: Session, purchasing_id: int, scraped: Scraped) -> dict[str, str]:
    """Write the valid values; the tracking number only where none is set (never overwrite
    a number someone else wrote). What was kept back is returned as rejections."""
    kept: dict[str, str] = {}
    if scraped.tracking_number is not None:
        written = session.execute(
            update(Purchasing)
            .where(
                Purchasing.id == purchasing_id,
                or_(Purchasing.tracking_number.is_(None), Purchasing.tracking_number == ""),
            )
            .values(tracking_number=scraped.tracking_number)
        ).rowcount
        if not written:
            kept["tracking_number_already_set"] = (
                f"{scraped.tracking_number} not written: the purchase already has a number"
            )
    values = {
        "latest_delivery_status": scraped.delivery_status,
        "shipping_method": scraped.shipping_method,
        "estimated_delivery_date": scraped.estimated_delivery_date,
    }
    values = {column: value for column, value in values.items() if value is not None}
    if values:
        session.execute(update(Purchasing).where(Purchasing.id == purchasing_id).values(**values))
    return kept
