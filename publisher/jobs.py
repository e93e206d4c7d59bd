"""The tracking_job rows the publisher works on: finding them (or making them for manual
requests), and the locks that keep one handler on a job at a time."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.contracts import CandidateFound
from shared.db.batches import NewJob, create_batch, lock_batches
from shared.db.jobs import TrackingJobRow, select_jobs
from shared.db.models import (
    OfficialAccount,
    Purchasing,
    TrackingBatch,
    TrackingJob,
    holds_order,
)
from shared.db.session import transaction
from shared.db.statuses import IN_FLIGHT
from shared.domain.urls import UnsafeValue, normalize_order_number, order_status_url
from shared.messaging.consuming import Reject
from shared.tasks import TaskConfig

log = logging.getLogger("trackfill.publisher")
#: Manual requests get batches named after their message id, so a redelivered request
#: finds the batch it made instead of making another.
MANUAL_NAMESPACE = uuid.UUID("6f7d2b0e-52a4-4c1e-9a53-0e1f3f1b7a11")


class CandidateJobs:
    def __init__(self, sessions: sessionmaker[Session]):
        self._sessions = sessions

    def resolve(self, message: CandidateFound, task: TaskConfig, message_id: str) -> TrackingJobRow:
        """The job a candidate.found is about; manual requests get a batch of their own
        (or the purchase's job already in flight). Raises Reject when there is none."""
        if message.custom_id:
            job = self.by_custom_id(message.custom_id)
            if job is None:
                raise Reject(f"no tracking_job has custom_id {message.custom_id!r}")
            return job
        if not task.seeks_number:  # its URL is a page of ten numbers its selection makes
            raise Reject(f"a manual request is for a tracking-number task, not {task.name}")
        for _ in range(2):  # a concurrent request for the same purchase may win the race
            try:
                return self._manual(message, task, message_id)
            except IntegrityError:
                continue
        raise Reject("could not record the manual request (concurrent requests)")

    def by_custom_id(self, custom_id: str) -> TrackingJobRow | None:
        with self._sessions() as session:
            row = session.execute(select_jobs().where(TrackingJob.custom_id == custom_id)).first()
        return TrackingJobRow.of(row) if row else None

    def _manual(self, message: CandidateFound, task: TaskConfig, message_id: str) -> TrackingJobRow:
        batch_uuid = uuid.uuid5(MANUAL_NAMESPACE, f"{task.name}:{message_id}")
        with transaction(self._sessions) as session:
            lock_batches(session)  # a selection pass cannot pick the purchase meanwhile
            earlier = session.execute(
                select_jobs().where(TrackingBatch.batch_uuid == batch_uuid)
            ).first()
            if earlier:
                return TrackingJobRow.of(earlier)
            purchasing_id, order, email = self._manual_target(session, message)
            try:
                url = order_status_url(order, email)
            except UnsafeValue as error:
                raise Reject(f"manual request refused: {error}") from None
            if purchasing_id is not None:
                in_flight = session.execute(
                    select_jobs().where(
                        TrackingJob.purchasing_id == purchasing_id,
                        TrackingJob.status.in_(IN_FLIGHT),
                    )
                ).first()
                if in_flight:
                    return TrackingJobRow.of(in_flight)
            (ref,) = create_batch(
                session,
                task,
                [NewJob(purchasing_id, order.strip().upper(), url)],
                batch_uuid=batch_uuid,
            )
            session.flush()
            return TrackingJobRow.of(
                session.execute(select_jobs().where(TrackingJob.id == ref.id)).one()
            )

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
            select(Purchasing.id).where(holds_order(order)).order_by(Purchasing.id).limit(1)
        ).scalar_one_or_none()
        return purchasing_id, order, message.email or ""

    def by_custom_ids(self, custom_ids: list[str]) -> dict[str, TrackingJobRow]:
        """The jobs of ``custom_ids`` that exist, in one query (a group's candidates)."""
        if not custom_ids:
            return {}
        with self._sessions() as session:
            rows = session.execute(select_jobs().where(TrackingJob.custom_id.in_(custom_ids))).all()
        return {row.custom_id: TrackingJobRow.of(row) for row in rows}

    def by_ids(self, job_ids: list[int]) -> dict[int, TrackingJobRow]:
        if not job_ids:
            return {}
        with self._sessions() as session:
            rows = session.execute(select_jobs().where(TrackingJob.id.in_(job_ids))).all()
        return {row.id: TrackingJobRow.of(row) for row in rows}

    def by_id(self, tracking_job_id: int) -> TrackingJobRow | None:
        with self._sessions() as session:
            row = session.execute(select_jobs().where(TrackingJob.id == tracking_job_id)).first()
        return TrackingJobRow.of(row) if row else None

    @contextmanager
    def locks(self) -> Iterator[JobLocks]:
        """Job locks for one handling, on one connection of their own (see JobLocks)."""
        engine = self._sessions.kw["bind"]
        with engine.connect() as connection:
            locks = JobLocks(connection.execution_options(isolation_level="AUTOCOMMIT"))
            try:
                yield locks
            finally:
                locks.release()


class JobLocks:
    """PostgreSQL session locks on jobs (a pack's is its leader's), held until released.

    A handler can outlive its message (a lost connection, the stop grace) and the
    replica that got the message again must keep its hands off that job meanwhile. The
    locks end with the process that holds them, kill -9 included; taken again on the
    same connection they are counted, so a handler can lock a job and its pack."""

    def __init__(self, connection):
        self._connection = connection

    def take(self, job_ids: list[int]) -> set[int]:
        """The ``job_ids`` whose locks this handling holds now (in one round trip); the
        others are held by another handler."""
        if not job_ids:
            return set()
        rows = self._connection.execute(
            _TRY_LOCKS, {"space": JOB_LOCK_SPACE, "jobs": list(job_ids)}
        ).all()
        return {job for job, got in rows if got}

    def release(self) -> None:
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock_all()"))
        except Exception as error:  # noqa: BLE001 - the work is done; the locks died with it
            # a connection that may still hold them is never given back to the pool
            log.warning("a job lock's connection failed at unlock (%s); discarded", error)
            self._connection.invalidate()


JOB_LOCK_SPACE = 0x7472_6B66  # the first key of the publisher's job locks
#: the second key is an int: ids past 2^31 wrap (two jobs 2^31 apart would share a lock)
_TRY_LOCKS = text(
    "SELECT job, pg_try_advisory_lock(:space, (job % 2147483647)::int) "
    "FROM unnest(CAST(:jobs AS bigint[])) AS job"
)
