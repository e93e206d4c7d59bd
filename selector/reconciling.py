"""The reconciler (docs/reconciling.md): no job in flight waits forever.

Each in-flight status has its bound here, for when the process that should move the job
on died or its message was lost:

- ``pending`` (a scraping job exists, its ending has not come): a ``job.completed`` hint
  for the scraping job, marked ``reconcile``. The ingestor confirms it with the API and
  imports it as if the webhook had come; a job the API no longer knows (404) ends
  ``failed``; one still running is left for the next look. One hint per scraping job,
  however many purchases it packs; its calls are follow-ups, inside their share.
- ``queued`` and ``publishing`` (no scraping job yet): the job's ``candidate.found`` again.
  The publisher is idempotent: a job whose create is in hand or made is settled, never
  created twice (its lost-create search decides).

A ``queued`` job that no publisher has taken (never given a pack: its task is off in the
publisher, say) ends ``failed`` with that reason once it has been re-sent
``UNTAKEN_RESENDS`` times, instead of being re-sent for ever.

Due jobs (``RECONCILE_AFTER_S`` after their creation, or after their scraping job's) are
taken oldest first, at most ``SELECTOR_MAX_RECORDS`` a pass; each look pushes the next
one out, doubling, at most ``RECHECK_MAX_S``. Messages go first, and the looks are
recorded once RabbitMQ confirmed them: a crash between the two only repeats a hint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Float, bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from selector.service import candidate_found
from shared.contracts import JobCompleted
from shared.db.batches import fail_jobs
from shared.db.jobs import TrackingJobRow, select_jobs
from shared.db.models import TrackingBatch, TrackingJob
from shared.db.rechecks import Recheck
from shared.db.session import transaction
from shared.db.statuses import IN_FLIGHT, JobStatus
from shared.logs import TAG
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import MessagePublisher, Outgoing
from shared.messaging.topology import JOB_COMPLETED
from shared.metrics import JOBS_ENDED, RECONCILED
from shared.settings import Settings
from shared.tasks import TaskConfig

log = logging.getLogger("trackfill.selector")
#: re-sends of a queued job no publisher has taken before it ends failed (with the
#: default RECONCILE_AFTER_S, the last one about 15 hours after its creation)
UNTAKEN_RESENDS = 4


@dataclass
class Looked:
    """What one reconciling pass did: hints for scraping jobs, candidates re-sent."""

    hinted: int = 0
    resent: int = 0


def _interval(name: str):
    return func.make_interval(0, 0, 0, 0, 0, 0, bindparam(name, type_=Float))


#: when a job in flight is due: its reconcile_at, else RECONCILE_AFTER_S after creation
_DUE = func.coalesce(TrackingJob.reconcile_at, TrackingJob.created_at + _interval("p_after_s"))


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        publisher: MessagePublisher,
        task: TaskConfig,
    ):
        self._settings = settings
        self._sessions = sessions
        self._publisher = publisher
        self._task = task
        self._recheck = Recheck(settings.schedule)

    def run(self) -> Looked:
        """Look at the jobs due now (see the module's docstring)."""
        self._end_untaken()
        with self._sessions() as session:
            due = self._due(session)
        hints: dict[int, TrackingJobRow] = {}
        resend: list[TrackingJobRow] = []
        for job in due:
            if job.scraping_job_id is not None:
                hints.setdefault(job.scraping_job_id, job)
            else:
                resend.append(job)
        messages = [self._hint(job) for job in hints.values()]
        messages += [candidate_found(job, self._task) for job in resend]
        self._publisher.publish_many(messages)
        self._looked(list(hints), [job.id for job in resend])
        looked = Looked(len(hints), len(resend))
        RECONCILED.labels("hint").inc(looked.hinted)
        RECONCILED.labels("resent").inc(looked.resent)
        if due:
            log.info(
                "%s reconciling: %d scraping jobs without an ending looked up, %d candidates "
                "re-sent",
                TAG,
                looked.hinted,
                looked.resent,
            )
        return looked

    def _end_untaken(self) -> int:
        """End the due jobs that were re-sent UNTAKEN_RESENDS times and are still not in
        any pack: no publisher takes them."""
        setting = self._task.sitemap_setting
        reason = (
            f"no publisher took it after {UNTAKEN_RESENDS} re-sends: is {self._task.name} "
            f"on in the publisher{f' ({setting} set)' if setting else ''}?"
        )
        untaken = (
            (TrackingJob.status == JobStatus.QUEUED)
            & TrackingJob.pack_of.is_(None)
            & (TrackingJob.reconcile_count >= UNTAKEN_RESENDS)
            & (TrackingJob.reconcile_at <= func.now())
            & TrackingJob.batch_id.in_(
                select(TrackingBatch.id).where(TrackingBatch.task_name == self._task.name)
            )
        )
        with transaction(self._sessions) as session:
            ended = fail_jobs(session, untaken, reason, self._task, self._recheck)
        if ended:
            JOBS_ENDED.labels(JobStatus.FAILED).inc(ended)
            log.warning("%s reconciling: %d jobs ended failed: %s", TAG, ended, reason)
        return ended

    def _due(self, session: Session) -> list[TrackingJobRow]:
        rows = session.execute(
            select_jobs()
            .where(
                TrackingJob.status.in_(IN_FLIGHT),
                TrackingBatch.task_name == self._task.name,
                func.now() >= _DUE,
            )
            .order_by(_DUE, TrackingJob.id)
            .limit(self._settings.selector_max_records),
            {"p_after_s": self._settings.reconcile_after_s},
        ).all()
        return [TrackingJobRow.of(row) for row in rows]

    def _hint(self, job: TrackingJobRow) -> Outgoing:
        message = JobCompleted(
            task=self._task.name,
            scraping_job_id=int(job.scraping_job_id or 0),
            status="reconcile",
            custom_id=job.custom_id,
            reconcile=True,
        )
        envelope = new_envelope(JOB_COMPLETED, message.to_payload())
        return Outgoing.of(JOB_COMPLETED, self._task.name, envelope)

    def _looked(self, scraping_jobs: list[int], job_ids: list[int]) -> None:
        """Push the next look out for every job of the hinted scraping jobs, and for the
        re-sent ones: RECONCILE_AFTER_S doubling per look, at most RECHECK_MAX_S."""
        wait = func.least(
            bindparam("p_after_s", type_=Float) * func.power(2, TrackingJob.reconcile_count),
            bindparam("p_max_s", type_=Float),
        )
        with transaction(self._sessions) as session:
            session.execute(
                update(TrackingJob)
                .where(
                    TrackingJob.status.in_(IN_FLIGHT),
                    TrackingJob.scraping_job_id.in_(scraping_jobs) | TrackingJob.id.in_(job_ids),
                )
                .values(
                    reconcile_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, wait),
                    reconcile_count=TrackingJob.reconcile_count + 1,
                ),
                {
                    "p_after_s": self._settings.reconcile_after_s,
                    "p_max_s": max(self._settings.recheck_max_s, self._settings.reconcile_after_s),
                },
            )
