"""Packs: the tracking_jobs published together in one scraping job (docs/packing.md).

A pack is named by its leader, the job whose ``custom_id`` the scraping job carries;
every member (the leader too) has ``pack_of`` = the leader's id. A pack is open while
its leader is ``queued``: candidates waiting for the same creation slot join it, up to
the most start URLs a job may carry (members that share a URL, as the ten purchases of
one Japan Post search page, count it once). Freezing it (the intent, before the create call)
sets every member ``publishing`` under the leader's row lock, so nothing joins a pack
whose call may be under way; the scraping job's id is then stored on all of them at
once, and a failure fails all of them. With ``PUBLISH_MAX_URLS_PER_JOB=1`` every job
is a pack of one: the seed's one order per scraping job.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db.batches import fail_jobs
from shared.db.credits import record_cost
from shared.db.jobs import TrackingJobRow, select_jobs
from shared.db.models import TrackingBatch, TrackingJob
from shared.db.rechecks import Recheck
from shared.db.session import transaction
from shared.db.statuses import IN_FLIGHT, UNPUBLISHED, BatchStatus, JobStatus
from shared.metrics import JOBS_ENDED
from shared.tasks import task_for_custom_id


@dataclass(frozen=True)
class Frozen:
    """A pack at the moment of its create call: the attempt's number and its members."""

    attempt: int
    members: list[TrackingJobRow]

    @property
    def start_urls(self) -> list[str]:
        """Each member's URL once (two purchases of one order share a page)."""
        return list(dict.fromkeys(member.target_url for member in self.members))


#: a job no pack has taken: queued, without a pack or a scraping job
_UNPACKED = (
    TrackingJob.pack_of.is_(None)
    & TrackingJob.scraping_job_id.is_(None)
    & (TrackingJob.status == JobStatus.QUEUED)
)


class Packs:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        recheck: Recheck,
        max_urls: int,
        reconcile_after_s: float = 1800.0,
    ):
        self._sessions = sessions
        self._recheck = recheck
        self.max_urls = max_urls
        self._reconcile_after_s = reconcile_after_s

    def fitting(
        self, jobs: list[TrackingJobRow], urls: set[str] | frozenset[str] = frozenset()
    ) -> list[TrackingJobRow]:
        """Those of ``jobs`` (in order) that one pack takes beside a pack's ``urls``:
        a job whose URL is already in it, or that brings a new URL while there is room."""
        taken = set(urls)
        fits = []
        for job in jobs:
            if job.target_url not in taken and len(taken) < self.max_urls:
                taken.add(job.target_url)
            if job.target_url in taken:
                fits.append(job)
        return fits

    def lead(self, jobs: list[TrackingJobRow]) -> list[TrackingJobRow]:
        """A new pack of ``jobs`` (those still without one), led by the first of them."""
        with transaction(self._sessions) as session:
            free = set(
                session.execute(
                    select(TrackingJob.id)
                    .where(
                        TrackingJob.id.in_([job.id for job in jobs]),
                        _UNPACKED,
                    )
                    .with_for_update()
                ).scalars()
            )
            if not free:
                return []
            leader_id = next(job.id for job in jobs if job.id in free)
            session.execute(
                update(TrackingJob).where(TrackingJob.id.in_(free)).values(pack_of=leader_id)
            )
            return self._members(session, leader_id, free)

    def join(self, leader_id: int, jobs: list[TrackingJobRow]) -> list[TrackingJobRow]:
        """Add ``jobs`` (in order, as many as there is room for) to the open pack of
        ``leader_id``; the ones that joined (none if the pack is no longer open)."""
        with transaction(self._sessions) as session:
            if self._lock_open(session, leader_id) is None:
                return []
            urls = session.execute(
                select(TrackingJob.target_url).where(TrackingJob.pack_of == leader_id).distinct()
            ).scalars()
            room = [job.id for job in self.fitting(jobs, set(urls))]
            if not room:
                return []
            ids = session.execute(
                update(TrackingJob)
                .where(
                    TrackingJob.id.in_(room),
                    _UNPACKED,
                )
                .values(pack_of=leader_id)
                .returning(TrackingJob.id)
            ).scalars()
            return self._members(session, leader_id, set(ids))

    def attach(self, jobs: list[TrackingJobRow], prefix: str) -> list[TrackingJobRow]:
        """Those of ``jobs`` (still without a pack) whose URL is already in a pack in
        flight of the task of custom-id ``prefix``: each joins that pack, whatever its
        state (a start URL is in one scraping job in flight at most). One whose pack
        has its scraping job gets it (``pending``); in one being created, the create's
        answer is stored on it with the others. The ones that joined, as they are now."""
        fresh = [job.id for job in jobs]
        joined: set[int] = set()
        with transaction(self._sessions) as session:
            packs = session.execute(
                select(TrackingJob.target_url, func.min(TrackingJob.pack_of))
                .where(
                    TrackingJob.target_url.in_({job.target_url for job in jobs}),
                    TrackingJob.custom_id.startswith(prefix),
                    TrackingJob.pack_of.is_not(None),
                    TrackingJob.status.in_(IN_FLIGHT),
                    TrackingJob.id.not_in(fresh),
                )
                .group_by(TrackingJob.target_url)
            ).all()
            for url, leader_id in sorted(packs, key=lambda row: row[1]):
                at_url = [j.id for j in jobs if j.target_url == url]
                joined |= _join_pack(session, leader_id, at_url)
            members = self._members(session, 0, joined)
            _processing(session, {m.id for m in members if m.status != JobStatus.QUEUED})
            return members

    def freeze(self, leader: TrackingJobRow) -> Frozen | None:
        """Record the intent before the call: every member ``publishing``, the attempt
        counted on the leader. None if the pack has its scraping job or has ended."""
        with transaction(self._sessions) as session:
            session.execute(
                select(TrackingJob.id).where(TrackingJob.id == leader.id).with_for_update()
            ).scalar_one_or_none()
            members = session.execute(
                update(TrackingJob)
                .where(_unpublished_of(leader.id))
                .values(status=JobStatus.PUBLISHING)
                .returning(TrackingJob.id, TrackingJob.batch_id)
            ).all()
            if not members:
                return None
            attempt = session.execute(
                update(TrackingJob)
                .where(TrackingJob.id == leader.id)
                .values(publish_attempts=TrackingJob.publish_attempts + 1)
                .returning(TrackingJob.publish_attempts)
            ).scalar_one()
            _processing(session, {member for member, _ in members})
            found = self._members(session, leader.id, {member for member, _ in members})
            return Frozen(attempt, found)

    def store(self, leader: TrackingJobRow, scraping_job_id: int) -> list[TrackingJobRow]:
        """The scraping job made for the pack, on every member still without one
        (``pending``), and what it cost in page credits (docs/credits.md); the members it
        was stored on. The reconciler looks at it ``reconcile_after_s`` from now if no
        ending has come by then."""
        after = func.make_interval(0, 0, 0, 0, 0, 0, self._reconcile_after_s)
        with transaction(self._sessions) as session:
            ids = session.execute(
                update(TrackingJob)
                .where(_unpublished_of(leader.id))
                .values(
                    scraping_job_id=scraping_job_id,
                    status=JobStatus.PENDING,
                    error=None,
                    reconcile_at=func.now() + after,
                    reconcile_count=0,
                )
                .returning(TrackingJob.id)
            ).scalars()
            stored = set(ids)
            task = task_for_custom_id(leader.custom_id)
            if stored and task is not None:
                record_cost(session, scraping_job_id, task.name)
            return self._members(session, leader.id, stored)

    def fail(self, leader: TrackingJobRow, reason: str) -> int:
        """Every member still without a scraping job ends ``failed`` with ``reason`` (see
        :func:`fail_jobs`: a purchase of a task that seeks its number waits its re-check
        delay). How many."""
        task = task_for_custom_id(leader.custom_id)
        with transaction(self._sessions) as session:
            failed = fail_jobs(session, _unpublished_of(leader.id), reason, task, self._recheck)
        JOBS_ENDED.labels(JobStatus.FAILED).inc(failed)
        return failed

    @staticmethod
    def _lock_open(session: Session, leader_id: int) -> int | None:
        """The leader's row, locked, if its pack is still open (the leader ``queued``)."""
        return session.execute(
            select(TrackingJob.id)
            .where(
                TrackingJob.id == leader_id,
                TrackingJob.pack_of == leader_id,
                TrackingJob.status == JobStatus.QUEUED,
                TrackingJob.scraping_job_id.is_(None),
            )
            .with_for_update()
        ).scalar_one_or_none()

    @staticmethod
    def _members(session: Session, leader_id: int, ids: set[int]) -> list[TrackingJobRow]:
        if not ids:
            return []
        rows = session.execute(
            select_jobs().where(TrackingJob.id.in_(ids)).order_by(TrackingJob.id)
        ).all()
        return [TrackingJobRow.of(row) for row in rows]


def _join_pack(session: Session, leader_id: int, job_ids: list[int]) -> set[int]:
    """Those of ``job_ids`` (still queued, without a pack) that join the pack of
    ``leader_id``, taking its scraping job (``pending``) or its ``publishing`` state."""
    leader = session.execute(
        select(TrackingJob.scraping_job_id, TrackingJob.status, TrackingJob.reconcile_at)
        .where(TrackingJob.id == leader_id)
        .with_for_update()
    ).one()
    values: dict = {"pack_of": leader_id}
    if leader.scraping_job_id is not None:
        values |= {
            "scraping_job_id": leader.scraping_job_id,
            "status": JobStatus.PENDING,
            "reconcile_at": leader.reconcile_at,
        }
    elif leader.status == JobStatus.PUBLISHING:
        values["status"] = JobStatus.PUBLISHING
    joined = session.execute(
        update(TrackingJob)
        .where(
            TrackingJob.id.in_(job_ids),
            _UNPACKED,
        )
        .values(**values)
        .returning(TrackingJob.id)
    ).scalars()
    return set(joined)


def _unpublished_of(leader_id: int):
    """The members of the pack still without a scraping job, not ended."""
    return (
        (TrackingJob.pack_of == leader_id)
        & TrackingJob.scraping_job_id.is_(None)
        & TrackingJob.status.in_(UNPUBLISHED)
    )


def _processing(session: Session, job_ids: set[int]) -> None:
    """The batches of ``job_ids`` still ``pending`` are ``processing``: a job of theirs
    is being created or has its scraping job."""
    if job_ids:
        batches = select(TrackingJob.batch_id).where(TrackingJob.id.in_(job_ids))
        session.execute(
            update(TrackingBatch)
            .where(TrackingBatch.id.in_(batches), TrackingBatch.status == BatchStatus.PENDING)
            .values(status=BatchStatus.PROCESSING)
        )
