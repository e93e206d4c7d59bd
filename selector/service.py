"""One selection pass: select, record the batch, commit, then publish the candidates."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from selector.refresh import choose_due
from selector.selection import Candidate, Skipped, choose, iter_matches
from selector.yamato import choose_yamato_due
from shared.contracts import CandidateFound
from shared.db import sync_log
from shared.db.batches import (
    NewJob,
    create_batch,
    lock_batches,
    mark_published,
    unpublished_jobs,
)
from shared.db.credits import latest_reading
from shared.db.jobs import TrackingJobRow, count_unpublished
from shared.db.rechecks import Recheck, count_expired
from shared.db.session import transaction
from shared.domain.masking import mask_email
from shared.domain.urls import order_of
from shared.logs import TAG
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import MessagePublisher, Outgoing, PublishError
from shared.messaging.topology import CANDIDATE_FOUND
from shared.metrics import CANDIDATES_SELECTED, CANDIDATES_SKIPPED
from shared.settings import Settings
from shared.tasks import (
    JAPAN_POST_TRACKING_10,
    OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO,
    YAMATO_STATUS_REFRESH,
    TaskConfig,
)

log = logging.getLogger("trackfill.selector")

#: each task's selection: (session, settings, limit) -> (candidates, skipped)
SELECTIONS: dict[str, Callable[[Session, Settings, int], tuple[list[Candidate], list[Skipped]]]] = {
    OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO.name: lambda session, settings, limit: choose(
        iter_matches(session, settings.recheck_expire_s), limit
    ),
    JAPAN_POST_TRACKING_10.name: lambda session, settings, limit: choose_due(
        session, settings.schedule, limit
    ),
    YAMATO_STATUS_REFRESH.name: lambda session, settings, limit: choose_yamato_due(
        session, settings.schedule, limit
    ),
}


@dataclass
class PassResult:
    batch_uuid: str | None = None
    found: int = 0
    dispatched: int = 0
    republished: int = 0
    #: purchases given up (RECHECK_EXPIRE_S), still without a tracking number
    expired: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    error: str | None = None
    #: why nothing was selected although purchases may be due (the page-credit reserve)
    held: str | None = None

    @property
    def details(self) -> dict[str, Any]:
        return {
            "batch_uuid": self.batch_uuid,
            "found": self.found,
            "dispatched": self.dispatched,
            "republished": self.republished,
            "expired": self.expired,
            "skipped": [
                {"purchasing_id": s.match.purchasing_id, "reason": s.reason} for s in self.skipped
            ],
            "error": self.error,
            "held": self.held,
        }


class Selector:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        publisher: MessagePublisher | None,
        task: TaskConfig = OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO,
        limit: int | None = None,
    ):
        self._settings = settings
        self._sessions = sessions
        self._publisher = publisher
        self._task = task
        self._recheck = Recheck(settings.schedule)
        self._limit = limit

    @property
    def task(self) -> TaskConfig:
        return self._task

    @property
    def limit(self) -> int:
        """The most purchases a pass takes: the one given, else ``SELECTOR_MAX_RECORDS``
        start URLs' worth (ten purchases share a Japan Post search page)."""
        if self._limit is not None:
            return self._limit
        return self._settings.selector_max_records * self._task.purchases_per_url

    @property
    def pack_size(self) -> int:
        """The most purchases one scraping job of the task carries."""
        return self._task.pack_size(self._settings)

    @property
    def feed_level(self) -> int:
        """Under a backlog, the next pass runs once fewer jobs than this wait for the
        publisher: two packs' worth (at least a pass), so that the quota, not
        ``SELECTOR_INTERVAL_S``, sets the pace without piling up parked candidates."""
        return max(self.limit, 2 * self.pack_size)

    def backlog_after(self, result: PassResult) -> bool:
        """The pass took all it could: more purchases are probably waiting."""
        return result.found - len(result.skipped) >= self.limit

    def waiting_for_publisher(self) -> int:
        """Jobs of this task not yet given a scraping job (in the publisher's queues)."""
        with self._sessions() as session:
            return count_unpublished(session, self._task.name)

    def preview(self) -> tuple[list[Candidate], list[Skipped]]:
        """What a pass would select now; reads only (a read-only transaction)."""
        with self._sessions() as session, session.begin():
            session.execute(text("SET TRANSACTION READ ONLY"))
            return self._choose(session)

    def held(self) -> str | None:
        """Why a pass would select nothing now (the credits at the reserve), or None."""
        with self._sessions() as session:
            return self._held(session)

    def _held(self, session: Session) -> str | None:
        reading = latest_reading(session)
        reserve = self._settings.page_credits_reserve
        if reading is None or reading.page_credits > reserve:
            return None
        return (
            f"page credits at the reserve: {reading.page_credits} left "
            f"(PAGE_CREDITS_RESERVE {reserve}); only manual requests are scraped"
        )

    def _choose(self, session: Session) -> tuple[list[Candidate], list[Skipped]]:
        return SELECTIONS[self._task.name](session, self._settings, self.limit)

    def run_pass(self, source: str = "daemon") -> PassResult:
        """Select and publish; the result is also written to sync_log."""
        result = PassResult()
        if self._publisher is not None:
            self._publisher.ensure_ready()  # select nothing that could not be published
        try:
            owed, jobs = self._select(result)
        except IntegrityError:
            # a writer that does not take the batches lock made a job in flight for a
            # selected purchase meanwhile: the same pass again sees it
            log.warning("%s a purchase got a job meanwhile; selecting again", TAG)
            owed, jobs = self._select(result)
        self._log_selection(result, jobs)
        result.batch_uuid = jobs[0].batch_uuid if jobs else None
        result.republished, result.error = self._publish(owed, "Re-dispatched")
        if result.error is None:
            result.dispatched, result.error = self._publish(jobs, "Dispatched")
        log.info("%s Execution complete: dispatched %d tasks", TAG, result.dispatched)
        CANDIDATES_SELECTED.inc(result.dispatched)
        for skipped in result.skipped:
            CANDIDATES_SKIPPED.labels(skipped.rule).inc()
        confirmed = owed[: result.republished] + jobs[: result.dispatched]
        self._record(result, source, [job.id for job in confirmed])
        if result.error is not None:
            raise PublishError(result.error)
        return result

    def _select(self, result: PassResult) -> tuple[list[TrackingJobRow], list[TrackingJobRow]]:
        """In one transaction: the jobs owed a publish, and a new batch of the selected
        candidates (the skipped ones wait their re-check delay)."""
        with transaction(self._sessions) as session:
            lock_batches(session)
            owed = unpublished_jobs(session, self._task, self._settings.selector_republish_grace_s)
            result.held = self._held(session)
            candidates, result.skipped = ([], []) if result.held else self._choose(session)
            result.found = len(candidates) + len(result.skipped)
            if self._task.seeks_number:  # giving up is about a number never found
                result.expired = count_expired(session, self._settings.recheck_expire_s)
            for skipped in result.skipped:
                self._recheck.record(
                    session, skipped.match.purchasing_id, f"skipped: {skipped.reason}"
                )
            new_jobs = [NewJob(c.match.purchasing_id, order_of(c.url), c.url) for c in candidates]
            return owed, create_batch(session, self._task, new_jobs) if new_jobs else []

    def _log_selection(self, result: PassResult, jobs: list[TrackingJobRow]) -> None:
        if result.held:
            log.warning("%s Selected nothing: %s", TAG, result.held)
        log.info("%s Found %d matching records", TAG, result.found)
        for skipped in result.skipped:
            match = skipped.match
            log.warning(
                "%s Skipped purchase %d (order %s, %s): %s",
                TAG,
                match.purchasing_id,
                match.order_number,
                mask_email(match.email),
                skipped.reason,
            )
        if jobs:
            short = jobs[0].batch_uuid.replace("-", "")[:8]
            log.info("%s Created TrackingBatch %s with %d jobs", TAG, short, len(jobs))

    def _publish(self, jobs: list[TrackingJobRow], verb: str) -> tuple[int, str | None]:
        """Publish the jobs' candidate.found messages together (one wait for all the
        confirms); (how many were confirmed, the error if any).
        On an error none is confirmed: a later pass re-publishes them all."""
        if not jobs:
            return 0, None
        if self._publisher is None:
            return 0, "no broker connection"
        try:
            self._publisher.publish_many([self._outgoing(job) for job in jobs])
        except PublishError as failure:
            log.error(
                "%s publishing %d tasks failed: %s (a later pass re-publishes them)",
                TAG,
                len(jobs),
                failure,
            )
            return 0, str(failure)
        for number, job in enumerate(jobs, start=1):
            log.info(
                "%s %s task %d/%d: %s for order %s",
                TAG,
                verb,
                number,
                len(jobs),
                job.custom_id,
                job.order_number,
            )
        return len(jobs), None

    def _outgoing(self, job: TrackingJobRow) -> Outgoing:
        return candidate_found(job, self._task)

    def _record(self, result: PassResult, source: str, published: list[int]) -> None:
        """Mark the confirmed jobs published and write the pass's sync_log row."""
        message = (
            f"Dispatched {result.dispatched} tasks"
            if result.found or result.republished
            else "No matching records"
        )
        if result.held:
            message += f"; selected nothing: {result.held}"
        with transaction(self._sessions) as session:
            mark_published(session, published)
            sync_log.record(
                session,
                self._task.triggered,
                result.error is None,
                message,
                {**result.details, "source": source},
            )


def candidate_found(job: TrackingJobRow, task: TaskConfig) -> Outgoing:
    """The candidate.found of a job made by a pass (or sent again by the reconciler)."""
    message = CandidateFound(
        task=task.name,
        purchasing_id=job.purchasing_id,
        custom_id=job.custom_id,
        batch_uuid=job.batch_uuid,
    )
    envelope = new_envelope(CANDIDATE_FOUND, message.to_payload())
    return Outgoing.of(CANDIDATE_FOUND, task.name, envelope)
