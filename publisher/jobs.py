"""The tracking_job rows the publisher works on: finding them (or making them for manual
requests), recording the intent, the scraping job id, and failures."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from sqlalchemy import String, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.contracts import CandidateFound
from shared.db.batches import NewJob, create_batch, lock_batches, recount_batch
from shared.db.models import (
    IN_FLIGHT_STATUSES,
    OfficialAccount,
    Purchasing,
    TrackingBatch,
    TrackingJob,
)
from shared.db.rechecks import Recheck
from shared.db.session import transaction
from shared.domain.urls import UnsafeValue, normalize_order_number, order_status_url
from shared.messaging.consuming import Reject
from shared.metrics import JOBS_ENDED
from shared.tasks import TaskConfig

log = logging.getLogger("trackfill.publisher")
#: Manual requests get batches named after their message id, so a redelivered request
#: finds the batch it made instead of making another.
MANUAL_NAMESPACE = uuid.UUID("6f7d2b0e-52a4-4c1e-9a53-0e1f3f1b7a11")


@dataclass(frozen=True)
class JobView:
    id: int
    custom_id: str
    job_id: int | None
    status: str
    target_url: str
    purchasing_id: int | None
    batch_uuid: str
    publish_attempts: int


class Jobs:
    def __init__(self, sessions: sessionmaker[Session], recheck: Recheck):
        self._sessions = sessions
        self._recheck = recheck

    def resolve(self, message: CandidateFound, task: TaskConfig, message_id: str) -> JobView:
        """The job a candidate.found is about; manual requests get a batch of their own
        (or the purchase's job already in flight). Raises Reject when there is none."""
        if message.custom_id:
            job = self.by_custom_id(message.custom_id)
            if job is None:
                raise Reject(f"no tracking_job has custom_id {message.custom_id!r}")
            return job
        for _ in range(2):  # a concurrent request for the same purchase may win the race
            try:
                return self._manual(message, task, message_id)
            except IntegrityError:
                continue
        raise Reject("could not record the manual request (concurrent requests)")

    def by_custom_id(self, custom_id: str) -> JobView | None:
        with self._sessions() as session:
            row = session.execute(_view().where(TrackingJob.custom_id == custom_id)).first()
        return JobView(*row) if row else None

    def _manual(self, message: CandidateFound, task: TaskConfig, message_id: str) -> JobView:
        batch_uuid = uuid.uuid5(MANUAL_NAMESPACE, f"{task.name}:{message_id}")
        with transaction(self._sessions) as session:
            lock_batches(session)  # a selection pass cannot pick the purchase meanwhile
            earlier = session.execute(_view().where(TrackingBatch.batch_uuid == batch_uuid)).first()
            if earlier:
                return JobView(*earlier)
            purchasing_id, order, email = self._manual_target(session, message)
            try:
                url = order_status_url(order, email)
            except UnsafeValue as error:
                raise Reject(f"manual request refused: {error}") from None
            if purchasing_id is not None:
                in_flight = session.execute(
                    _view().where(
                        TrackingJob.purchasing_id == purchasing_id,
                        TrackingJob.status.in_(IN_FLIGHT_STATUSES),
                    )
                ).first()
                if in_flight:
                    return JobView(*in_flight)
            (ref,) = create_batch(
                session,
                task,
                [NewJob(purchasing_id, order.strip().upper(), url)],
                batch_uuid=batch_uuid,
            )
            session.flush()
            return JobView(*session.execute(_view().where(TrackingJob.id == ref.id)).one())

    def _manual_target(self, session: Session, message: CandidateFound):
        """(purchasing_id or None, order number, e-mail) of a manual request."""
        if message.purchasing_id is not None:
            row = session.execute(
                select(Purchasing.id, Purchasing.order_number, OfficialAccount.email)
                .outerjoin(OfficialAccount, OfficialAccount.id == Purchasing.official_account_id)
                .where(Purchasing.id == message.purchasing_id)
            ).first()
            if row is None:
                raise Reject(f"purchase {message.purchasing_id} does not exist")
            if not row.email:
                raise Reject(f"purchase {message.purchasing_id} has no account e-mail")
            return row.id, row.order_number or "", row.email
        try:
            order = normalize_order_number(message.order_number)
        except UnsafeValue as error:
            raise Reject(f"manual request refused: {error}") from None
        purchasing_id = session.execute(
            select(Purchasing.id)
            .where(func.upper(func.btrim(Purchasing.order_number)) == order)
            .order_by(Purchasing.id)
            .limit(1)
        ).scalar_one_or_none()
        return purchasing_id, order, message.email or ""

    # -- exclusion ---------------------------------------------------------------------
    @contextmanager
    def exclusive(self, job: JobView) -> Iterator[bool]:
        """Hold this job's lock for the block: True if this caller has it, False if
        another holds it (a replica, or a handler of this process that outlived its
        message, still inside its create call). A session lock of PostgreSQL on a
        connection of its own, so it ends with the process that holds it, kill -9
        included."""
        engine = self._sessions.kw["bind"]
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            key = {"space": JOB_LOCK_SPACE, "job": job.id}
            held = connection.execute(_TRY_LOCK, key).scalar_one()
            try:
                yield bool(held)
            finally:
                if held:
                    _unlock(connection, key)

    # -- state changes -----------------------------------------------------------------
    def start_attempt(self, job: JobView) -> int | None:
        """Record the intent before the call (status ``publishing``); the attempt number,
        or None if the job has meanwhile got its scraping job or ended."""
        with transaction(self._sessions) as session:
            attempts = session.execute(
                update(TrackingJob)
                .where(_unpublished(job))
                .values(status="publishing", publish_attempts=TrackingJob.publish_attempts + 1)
                .returning(TrackingJob.publish_attempts)
            ).scalar_one_or_none()
            session.execute(
                update(TrackingBatch)
                .where(
                    TrackingBatch.batch_uuid == uuid.UUID(job.batch_uuid),
                    TrackingBatch.status == "pending",
                )
                .values(status="processing")
            )
            return attempts

    def store_job_id(self, job: JobView, job_id: int) -> JobView | None:
        """The scraping job made for ``job`` (``pending``); None if the job already has
        one or has ended meanwhile (nothing is changed then)."""
        with transaction(self._sessions) as session:
            stored = session.execute(
                update(TrackingJob)
                .where(_unpublished(job))
                .values(job_id=job_id, status="pending", error=None)
                .returning(TrackingJob.id)
            ).scalar_one_or_none()
        if stored is None:
            return None
        return replace(job, job_id=job_id, status="pending")

    def fail(self, job: JobView, reason: str) -> None:
        """The job ends ``failed`` with ``reason`` (unless it has a scraping job or has
        ended meanwhile); its batch's counts are recounted and its purchase waits its
        re-check delay, as after any attempt without a tracking number."""
        with transaction(self._sessions) as session:
            failed = session.execute(
                update(TrackingJob)
                .where(_unpublished(job))
                .values(status="failed", error=reason[:2000], completed_at=func.now())
                .returning(TrackingJob.id)
            ).scalar_one_or_none()
            if failed is None:
                return
            if job.purchasing_id is not None:
                self._recheck.schedule(session, job.purchasing_id, reason)
            recount_batch(session, uuid.UUID(job.batch_uuid))
        JOBS_ENDED.labels("failed").inc()


JOB_LOCK_SPACE = 0x7472_6B66  # the first key of the publisher's per-job locks
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:space, :job)")


def _unlock(connection, key: dict) -> None:
    try:
        connection.execute(text("SELECT pg_advisory_unlock(:space, :job)"), key)
    except Exception as error:  # noqa: BLE001 - the work is done; the lock died with it
        # a connection that may still hold the lock is never given back to the pool
        log.warning("a job lock's connection failed at unlock (%s); discarded", error)
        connection.invalidate()


def _unpublished(job: JobView):
    """The job, while it has no scraping job and has not ended."""
    return (
        (TrackingJob.id == job.id)
        & TrackingJob.job_id.is_(None)
        & TrackingJob.status.in_(("queued", "publishing"))
    )


def _view():
    return select(
        TrackingJob.id,
        TrackingJob.custom_id,
        TrackingJob.job_id,
        TrackingJob.status,
        TrackingJob.target_url,
        TrackingJob.purchasing_id,
        TrackingBatch.batch_uuid.cast(String()),
        TrackingJob.publish_attempts,
    ).join(TrackingBatch, TrackingBatch.id == TrackingJob.batch_id)
