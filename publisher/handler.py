"""One candidate: find or make its job, get a creation slot, create the scraping job.

Order of effects, so the process can die anywhere without a second scraping job:
1. the job is ``publishing`` (intent, committed) and the ledger marks the call used;
2. the API call;
3. the job id is stored (``pending``), then ``job.published`` is announced, then the
   message is acked.
A candidate that comes back with a create call of unknown effect (no answer, a 5xx)
first looks for a job under its custom_id in ``scraping-jobs`` before creating again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from publisher.jobs import Jobs, JobView
from shared.contracts import CandidateFound, JobPublished
from shared.faults import crash_point
from shared.messaging.consuming import Delivery, Reject
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
from shared.webscraper.quota import CREATE, QuotaLedger, Reservation

log = logging.getLogger("trackfill.publisher")
TAG = "[tracking_number_empty_worker]"
SEARCH_MAX_PAGES = 5
#: a job created more than this before the intent is not ours (pages are newest first)
SEARCH_SLACK_S = 120


@dataclass(frozen=True)
class PublisherConfig:
    max_attempts: int
    retry_base_s: float
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
        crash_point("publisher:before-create-call")
        log.info("%s Publishing single URL: task=%s, custom_id=%s", TAG, task.name, job.custom_id)
        try:
            created = self._client.create_job(_payload(task, job), reservation)
        except QuotaWait:  # taken too late for its slot: a new one
            delivery.park(self._slot(job).wait_s)
            return
        except RateLimited as error:
            log.warning("%s %s: %s", TAG, job.custom_id, error)
            delivery.park(self._slot(job).wait_s)  # the ledger now holds the block
            return
        except Retryable as error:
            self._retry_or_fail(delivery, job, attempt, str(error))
            return
        except ApiError as error:  # refused: the same payload would be refused again
            self._jobs.fail(job, f"create refused: {error}")
            raise Reject(f"{job.custom_id}: create refused: {error}") from None
        crash_point("publisher:after-create-call")
        job = self._jobs.store_job_id(job, int(created["id"]))
        crash_point("publisher:after-store")
        log.info("%s Successfully published: %s (job_id=%s)", TAG, job.custom_id, job.job_id)
        self._announce(delivery, task, job)

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
        """If an earlier create call for this job may have worked, take its job: the id
        the ledger kept, or one found by custom_id in the job list. True if adopted."""
        made = self._ledger.create_made(job.custom_id)
        if made is None:
            return False
        found = made.job_id
        if found is None:
            try:
                found = self._search(task, job, made.call)
            except Retryable as error:
                attempt = self._jobs.start_attempt(job)
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
        self._announce(delivery, task, self._jobs.store_job_id(job, found))
        return True

    def _search(self, task: TaskConfig, job: JobView, made: Reservation) -> int | None:
        oldest = made.at.timestamp() - SEARCH_SLACK_S
        page, last = 1, 1
        while page <= min(last, SEARCH_MAX_PAGES):
            listing = self._client.list_jobs(page, task.sitemap_id)
            for scraping_job in listing.data:
                if scraping_job.get("custom_id") == job.custom_id:
                    return int(scraping_job["id"])
            if listing.data and all(_created(j) < oldest for j in listing.data):
                return None
            page, last = page + 1, listing.last_page
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


def _created(scraping_job: dict) -> float:
    value = scraping_job.get("time_created")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")  # unknown: assume recent, keep looking
