"""The ingestor's database work: find the notifications' jobs, and end them in one
transaction with everything that follows (purchase, re-check, batch counts, the processed
mark)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ingestor import statements as sql
from ingestor.records import Scraped
from shared.contracts import TOLD_FIELDS, JobCompleted, TrackingUpdated
from shared.db import outbox
from shared.db.batches import recount_batch
from shared.db.jobs import TrackingJobRow
from shared.db.rechecks import Page, Recheck
from shared.db.session import transaction
from shared.db.statuses import ENDED, JobStatus
from shared.domain.tracking_numbers import normalize
from shared.faults import crash_point
from shared.tasks import TRACKING_TASK_CONFIGS


@dataclass(frozen=True)
class Found:
    """The jobs of a group of notifications, by custom_id, and which of them were
    processed for their stored scraping job id already (a late duplicate)."""

    jobs: dict[str, TrackingJobRow]
    processed: frozenset[str]
    #: each job's purchase's tracking number, normalised (None: none)
    numbers: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Ending:
    """How a job ends: ``failure`` (the job fails with it) or ``scraped`` values."""

    failure: str | None = None
    scraped: Scraped | None = None

    @property
    def needs_recheck(self) -> bool:
        return self.failure is not None or self.scraped is None or self.scraped.needs_recheck

    @property
    def page(self) -> Page | None:
        """What the page said that the schedule reads; None: no page was read."""
        if self.scraped is None:
            return None
        return Page(self.scraped.delivery_status, self.scraped.estimate)

    def reason(self) -> str:
        if self.failure:
            return self.failure
        if self.scraped and self.scraped.rejected:
            return "rejected: " + ", ".join(sorted(self.scraped.rejected))
        status = self.scraped.delivery_status if self.scraped else None
        if self.scraped and not self.scraped.seeks_number:
            return f"status {status}"
        return f"no tracking number yet ({status or 'no status'})"


class NotifiedJobs:
    def __init__(self, sessions: sessionmaker[Session], recheck: Recheck):
        self._sessions = sessions
        self._recheck = recheck

    def find_many(self, events: list[JobCompleted]) -> Found:
        """The notifications' jobs and every job sharing their scraping jobs (a pack)."""
        with self._sessions() as session:
            rows = session.execute(
                sql.FIND_JOBS,
                {
                    "p_custom_ids": sorted({e.custom_id for e in events}),
                    "p_job_ids": sorted({e.scraping_job_id for e in events}),
                },
            ).all()
        return Found(
            {row.custom_id: TrackingJobRow.of(row) for row in rows},
            frozenset(row.custom_id for row in rows if row.processed),
            {row.custom_id: _normalized(row.purchase_number) for row in rows},
        )

    def look_later(self, scraping_job_id: int, base_s: float, max_s: float) -> None:
        """Leave the scraping job's jobs open for the reconciler, after a back-off (see
        :data:`ingestor.statements.LOOK_LATER`)."""
        with transaction(self._sessions) as session:
            session.execute(
                sql.LOOK_LATER,
                {"p_scrapingjob_id": scraping_job_id, "p_base_s": base_s, "p_max_s": max_s},
            )

    def finish_many(
        self, endings: list[tuple[TrackingJobRow, JobCompleted, Ending]]
    ) -> list[float | None]:
        """End each job as its ending says, all in one transaction; for each, the seconds
        since the job was created (its selection), or None (and nothing changed) if its
        notification was processed before or the job had already ended. Rows are locked
        in one order (jobs by id, then batches), so concurrent groups cannot deadlock."""
        ages: list[float | None] = [None] * len(endings)
        order = sorted(range(len(endings)), key=lambda i: endings[i][0].id)
        with transaction(self._sessions) as session:
            for i in order:
                ages[i] = self._end(session, *endings[i])
            changed = {endings[i][0].batch_uuid for i in order if ages[i] is not None}
            for batch_uuid in sorted(changed):
                recount_batch(session, uuid.UUID(batch_uuid))
            crash_point("ingestor:before-commit")  # the changes and their events roll back
        crash_point("ingestor:after-commit")  # committed: the relay publishes the events
        return ages

    def _end(
        self, session: Session, job: TrackingJobRow, event: JobCompleted, ending: Ending
    ) -> float | None:
        marked = session.execute(
            sql.MARK_PROCESSED,
            {
                "p_scrapingjob_id": event.scraping_job_id,
                "p_custom_id": job.custom_id,  # each job of a pack is processed on its own
                "p_status": event.status,
                "p_outcome": ending.reason()[:1000] if ending.needs_recheck else "filled",
            },
        ).first()
        current, age = session.execute(sql.LOCK_JOB, {"p_job_id": job.id}).one()
        if marked is None or current in ENDED:
            return None
        rejected = ending.scraped.rejected if ending.scraped else {}
        if ending.scraped is not None and job.purchasing_id is not None:
            rejected = {**rejected, **_fill(session, job, event, ending.scraped)}
        session.execute(
            sql.END_JOB,
            {
                "p_job_id": job.id,
                "p_status": JobStatus.FAILED if ending.failure else JobStatus.COMPLETED,
                "p_error": ending.failure[:2000] if ending.failure else None,
                "p_rejected": rejected or None,
            },
        )
        seeks_number = TRACKING_TASK_CONFIGS[event.task].seeks_number
        if ending.needs_recheck and seeks_number and job.purchasing_id is not None:
            self._recheck.record(session, job.purchasing_id, ending.reason(), ending.page)
        return age.total_seconds()


def _normalized(number: str | None) -> str | None:
    return normalize(number) if number else None


def _fill(
    session: Session, job: TrackingJobRow, event: JobCompleted, scraped: Scraped
) -> dict[str, str]:
    """Write the valid values in one statement, and a tracking.updated event of what
    changed into the outbox in the same transaction; a tracking number is kept back (and
    returned as a rejection) where the purchase already has another."""
    number = scraped.tracking_number
    estimate = scraped.estimate or (None, None)
    values = {
        "p_tracking_number": number,
        "p_delivery_status": scraped.delivery_status,
        "p_delivery_status_code": scraped.delivery_status_code,
        "p_shipping_method": scraped.shipping_method,
        "p_estimated_delivery_from": estimate[0],
        "p_estimated_delivery_date": estimate[1],
    }
    if all(value is None for value in values.values()):
        return {}
    row = session.execute(
        sql.FILL_PURCHASE, {"p_purchasing_id": job.purchasing_id, **values}
    ).one_or_none()
    if row is None:
        return {}  # the purchase was deleted meanwhile
    changes = _changes(row._mapping)
    if changes:
        outbox.add(
            session,
            TrackingUpdated(
                job.purchasing_id,  # type: ignore[arg-type]
                row.order_number,
                changes,
                event.task,
                event.scraping_job_id,
            ),
        )
    if number is not None and row.tracking_number != number:
        return {
            "tracking_number_already_set": (
                f"{number} not written: the purchase already has a number"
            )
        }
    return {}


def _changes(row: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each reported column whose value changed: ``{"old": ..., "new": ...}``."""
    return {
        name: {"old": _json(row[f"old_{name}"]), "new": _json(row[name])}
        for name in TOLD_FIELDS
        if row[f"old_{name}"] != row[name]
    }


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value
