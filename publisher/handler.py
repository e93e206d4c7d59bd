"""One candidate: find or make its job, get a creation slot, create the scraping job.

Order of effects, so the process can die anywhere without a second scraping job:
1. the job is ``publishing`` (intent, committed) and the ledger marks the call used;
2. the API call;
3. the job id is stored (``pending``), then ``job.published`` is announced, then the
   message is acked.
A candidate that comes back with a create call of unknown effect (no answer, a 5xx)
settles it before creating again: no sooner than the call's HTTP timeout after it was
made (a request still being served may yet create its job), it pages through the whole
of ``scraping-jobs`` for its custom_id, in whatever order the service lists them. Only
a complete search that does not find it means "not created"; a list too long to search
fails the job for an operator instead. The whole handling holds the job's lock, so a
handler that outlived its message (a lost connection, the stop grace) and the replica
that got the message again never work on one job at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from publisher.jobs import Jobs, JobView
from shared.contracts import CandidateFound, JobPublished
from shared.faults import crash_point
from shared.messaging.consuming import Delivery, Reject, Transient
from shared.messaging.envelope import new_envelope
from shared.messaging.topology import JOB_PUBLISHED, PUBLISHER_WAIT
from shared.tasks import TRACKING_TASK_CONFIGS, TaskConfig
from shared.webscraper.client import (
    ApiError,
    QuotaWait,
    RateLimited,
    Retryable,
    WebScraperClient,
)
from shared.webscraper.quota import CREATE, CreateMade, QuotaLedger, Reservation

log = logging.getLogger("trackfill.publisher")
TAG = "[tracking_number_empty_worker]"
#: a longer job list is not searched (each page is a call): the job fails for an operator
SEARCH_MAX_PAGES = 20
#: where a search stopped by the quota goes on: "<create call id>:<page>"
SEARCH_AT = "x-trackfill-search-at"


@dataclass(frozen=True)
class PublisherConfig:
    max_attempts: int
    retry_base_s: float
    #: a create without an answer is looked for no sooner than this after it was made
    settle_after_s: float = 30.0
    max_parkings_logged: int = 3
    #: waits up to this long are slept in place, longer ones parked in RabbitMQ
    sleep_max_s: float = 1.0


class CandidateHandler:
    def __init__(
        self, jobs: Jobs, ledger: QuotaLedger, client: WebScraperClient, config: PublisherConfig
    ):
        self._jobs = jobs
        self._ledger = ledger
        self._client = client
        self._config = config

    def __call__(self, delivery: Delivery) -> None:
        message: CandidateFound = delivery.message
        task = TRACKING_TASK_CONFIGS[message.task]
        job = self._jobs.resolve(message, task, delivery.envelope.id)
        with self._jobs.exclusive(job) as mine:
            if not mine:
                raise Transient(f"{job.custom_id} is in the hands of another publisher")
            self._publish(delivery, task, self._jobs.by_custom_id(job.custom_id) or job)

    def _publish(self, delivery: Delivery, task: TaskConfig, job: JobView) -> None:
        parkings = delivery.deaths(PUBLISHER_WAIT)
        if parkings > self._config.max_parkings_logged:
            log.warning("%s %s has been parked %d times", TAG, job.custom_id, parkings)
        if job.job_id is not None:
            self._announce(delivery, task, job)  # again: the last attempt may have died here
            return
        if job.status not in ("queued", "publishing"):
            log.info("%s %s already ended (%s); nothing to publish", TAG, job.custom_id, job.status)
            return
        try:
            if self._adopt_existing(delivery, task, job):
                return
        except QuotaWait as wait:
            delivery.park(wait.wait_s)
            return
        reservation = self._slot(job)
        if not reservation.ready and reservation.wait_s <= self._config.sleep_max_s:
            # a slot this close is waited for in place: parking would send the message
            # behind every candidate still queued (heartbeats are served meanwhile)
            time.sleep(reservation.wait_s)
            reservation = self._slot(job)  # claims the slot it just waited for
        if not reservation.ready:
            delivery.park(reservation.wait_s)
            return
        self._create(delivery, task, job, reservation)

    def _slot(self, job: JobView, not_before_s: float = 0.0) -> Reservation:
        """This job's creation slot: the one planned for it; else a free one close enough
        to wait for in place (it may fall between planned slots); else the next slot in
        order, to be waited for parked."""
        if not_before_s == 0:
            planned = self._ledger.claim(job.custom_id)
            if planned is not None:
                return planned
        near = self._ledger.reserve(
            CREATE,
            job.custom_id,
            not_before_s=not_before_s,
            plan=True,
            within_s=self._config.sleep_max_s,
            ordered=False,
        )
        if near.id is not None:
            return near
        return self._ledger.reserve(CREATE, job.custom_id, not_before_s=not_before_s, plan=True)

    def _create(
        self, delivery: Delivery, task: TaskConfig, job: JobView, reservation: Reservation
    ) -> None:
        attempt = self._jobs.start_attempt(job)
        if attempt is None:
            log.info("%s %s changed meanwhile; nothing to publish", TAG, job.custom_id)
            return
        crash_point("publisher:before-create-call")
        log.info("%s Publishing single URL: task=%s, custom_id=%s", TAG, task.name, job.custom_id)
        try:
            created = self._client.create_job(_payload(task, job), reservation)
        except QuotaWait as wait:  # too late for its slot, or a 429: a new slot (after it)
            if isinstance(wait, RateLimited):
                log.warning("%s %s: %s", TAG, job.custom_id, wait)
            delivery.park(self._slot(job).wait_s)
            return
        except Retryable as error:
            self._retry_or_fail(delivery, job, attempt, str(error))
            return
        except ApiError as error:  # refused: the same payload would be refused again
            self._jobs.fail(job, f"create refused: {error}")
            raise Reject(f"{job.custom_id}: create refused: {error}") from None
        crash_point("publisher:after-create-call")
        stored = self._store(job, int(created["id"]))
        if stored is None:
            return
        crash_point("publisher:after-store")
        log.info("%s Successfully published: %s (job_id=%s)", TAG, job.custom_id, stored.job_id)
        self._announce(delivery, task, stored)

    def _store(self, job: JobView, job_id: int) -> JobView | None:
        stored = self._jobs.store_job_id(job, job_id)
        if stored is None:  # cannot happen under the job's lock; said loudly if it does
            log.error("%s %s changed during its create: %s not stored", TAG, job.custom_id, job_id)
        return stored

    def _retry_or_fail(self, delivery: Delivery, job: JobView, attempt: int, reason: str):
        if attempt >= self._config.max_attempts:
            self._jobs.fail(job, f"create failed after {attempt} attempts: {reason}")
            raise Reject(f"{job.custom_id}: create failed after {attempt} attempts: {reason}")
        backoff = self._config.retry_base_s * 2 ** (attempt - 1)
        log.warning(
            "%s %s: attempt %d failed (%s); again in at least %.1fs",
            TAG,
            job.custom_id,
            attempt,
            reason,
            backoff,
        )
        delivery.park(self._slot(job, not_before_s=backoff).wait_s)

    def _adopt_existing(self, delivery: Delivery, task: TaskConfig, job: JobView) -> bool:
        """If an earlier create call for this job may have worked, settle it first: take
        the id the ledger kept, or look for the job in the job list. True if the
        candidate is dealt with (adopted, parked or failed); False: create."""
        made = self._ledger.create_made(job.custom_id)
        if made is None:
            return False
        found = made.job_id
        if found is None:
            if made.age_s < self._config.settle_after_s:
                # the call may still be served: look once its answer could no longer come
                delivery.park(self._slot(job, self._config.settle_after_s - made.age_s).wait_s)
                return True
            try:
                found = self._search(delivery, task, job, made)
            except _Paused as paused:
                delivery.park(paused.wait_s, **{SEARCH_AT: f"{made.call.id}:{paused.page}"})
                return True
            except Retryable as error:
                attempt = self._jobs.start_attempt(job)
                if attempt is not None:
                    self._retry_or_fail(delivery, job, attempt, f"looking for the job: {error}")
                return True
            except ApiError as error:
                self._jobs.fail(job, f"looking for the job failed: {error}")
                raise Reject(f"{job.custom_id}: looking for the job failed: {error}") from None
            self._ledger.record_outcome(made.call, None, f"settled: {found or 'not created'}")
            if found is None:
                return False
            log.warning(
                "%s %s: the job created before its answer was lost is %s; adopting it",
                TAG,
                job.custom_id,
                found,
            )
        stored = self._store(job, found)
        if stored is not None:
            self._announce(delivery, task, stored)
        return True

    def _search(
        self, delivery: Delivery, task: TaskConfig, job: JobView, made: CreateMade
    ) -> int | None:
        """The id of the job listed under ``job.custom_id``, or None when every page was
        read without it. Raises :class:`_Paused` when the quota stops it (it goes on
        from that page), :class:`Reject` (after failing the job) when the list is too
        long to read whole."""
        call, _, at = str(delivery.headers.get(SEARCH_AT) or "").partition(":")
        page = int(at) if call == str(made.call.id) and at.isdigit() else 1
        last = page
        while page <= last:
            try:
                listing = self._client.list_jobs(page, task.sitemap_id)
            except QuotaWait as wait:
                raise _Paused(page, wait.wait_s) from None
            for scraping_job in listing.data:
                if scraping_job.get("custom_id") == job.custom_id:
                    return int(scraping_job["id"])
            last = listing.last_page
            if last > SEARCH_MAX_PAGES:
                reason = (
                    f"create of unknown effect: scraping-jobs has {last} pages, more than "
                    f"the {SEARCH_MAX_PAGES} searched; an operator must look for {job.custom_id}"
                )
                self._jobs.fail(job, reason)
                raise Reject(f"{job.custom_id}: {reason}")
            page += 1
        return None

    def _announce(self, delivery: Delivery, task: TaskConfig, job: JobView) -> None:
        event = JobPublished(
            task=task.name,
            custom_id=job.custom_id,
            job_id=job.job_id,
            batch_uuid=job.batch_uuid,
            target_url=job.target_url,
            purchasing_id=job.purchasing_id,
        )
        delivery.publisher.publish(
            JOB_PUBLISHED,
            task.name,
            new_envelope(JOB_PUBLISHED, event.to_payload()),
            mandatory=False,
        )
        crash_point("publisher:before-ack")


def _payload(task: TaskConfig, job: JobView) -> dict:
    """The seed's create-job body."""
    return {
        "sitemap_id": task.sitemap_id,
        "driver": "fulljs",
        "page_load_delay": 2000,
        "request_interval": 2000,
        "start_urls": [job.target_url],
        "custom_id": job.custom_id,
    }


class _Paused(Exception):
    """A search stopped by the quota at ``page``: go on in ``wait_s``."""

    def __init__(self, page: int, wait_s: float):
        super().__init__(page, wait_s)
        self.page, self.wait_s = page, wait_s
