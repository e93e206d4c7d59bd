"""One job.completed: check it, confirm it with the API, download, validate, write.

The webhook is a hint (WEBSCRAPER_API.md): the job's status and record count come from
``GET scraping-job/{id}``, then ``GET scraping-job/{id}/json`` gives the data; both go
through the shared quota ledger (the two follow-up calls the publisher leaves room for).
Data that is not there yet is waited for parked in ``ingestor.wait`` (a constant delay,
so parked messages never expire behind a longer one); the confirmed status travels with
the parked message, so a retry costs one download, not two calls.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ingestor.jobs import ENDED, Ending, JobRow, Jobs
from ingestor.records import read_record, record_for
from shared.contracts import JobCompleted
from shared.messaging.consuming import Delivery, Reject, is_transient
from shared.metrics import FILL_LATENCY, JOBS_ENDED, VALIDATION_FAILURES
from shared.webscraper.client import (
    ApiError,
    NotFound,
    QuotaWait,
    Retryable,
    WebScraperClient,
)

log = logging.getLogger("trackfill.ingestor")
TAG = "[tracking_number_empty_worker]"
RUNNING = ("waiting-to-be-scheduled", "scheduled", "started", "shelved")
ATTEMPTS = "x-trackfill-attempts"
CONFIRMED = "x-trackfill-confirmed-status"
EXPECTED = "x-trackfill-expected-records"
MAX_PENDING = 1000


@dataclass(frozen=True)
class _Ended:
    """A notification whose job ends now: what to write, and whose outcome it is."""

    index: int
    envelope_id: str
    job: JobRow
    event: JobCompleted
    ending: Ending


@dataclass(frozen=True)
class IngestorConfig:
    retry_s: float
    max_retries: int


@dataclass(frozen=True)
class Confirmed:
    """What the API said about the job: its status and whether a record is expected."""

    status: str
    expects_record: bool
    problem: str | None = None
    created: dt.datetime | None = None


class CompletionHandler:
    def __init__(self, jobs: Jobs, client: WebScraperClient, config: IngestorConfig):
        self._jobs = jobs
        self._client = client
        self._config = config
        #: endings not written because of an outage, by envelope id (see _keep_for_retry)
        self._pending: dict[str, Ending] = {}

    def __call__(self, deliveries: list[Delivery]) -> list[BaseException | None]:
        """Handle a group of notifications: each is checked and confirmed with the API on
        its own, then every job that ends is written in one transaction. One outcome per
        delivery (see :data:`shared.messaging.consuming.GroupHandler`)."""
        outcomes: list[BaseException | None] = [None] * len(deliveries)
        jobs = self._jobs.find_many([d.message for d in deliveries])
        ended: list[_Ended] = []
        seen: set[tuple[str, int]] = set()
        with self._client.outcomes_together():
            for i, delivery in enumerate(deliveries):
                try:
                    job, ending = self._look_at(delivery, jobs, seen)
                except Exception as error:  # noqa: BLE001 - each delivery's own outcome
                    outcomes[i] = error
                    continue
                if job is not None and ending is not None:
                    ended.append(_Ended(i, delivery.envelope.id, job, delivery.message, ending))
        for i, outcome in self._finish(ended):
            outcomes[i] = outcome
        return outcomes

    def _look_at(
        self, delivery: Delivery, jobs: dict[str, JobRow], seen: set[tuple[str, int]]
    ) -> tuple[JobRow | None, Ending | None]:
        """The notification's job and how it ends (None: nothing to write now)."""
        event: JobCompleted = delivery.message
        key = (event.custom_id, event.scrapingjob_id)
        if key in seen:
            log.info("%s %s: duplicate notification in one group", TAG, event.custom_id)
            return None, None
        seen.add(key)
        job = self._check(delivery, event, jobs.get(event.custom_id))
        return job, self._settled(delivery, event, job) if job else None

    def _settled(self, delivery: Delivery, event: JobCompleted, job: JobRow) -> Ending | None:
        """How the job ends, after the API calls; None when the message was parked."""
        ending = self._pending.pop(delivery.envelope.id, None)
        if ending is not None:
            return ending  # confirmed and downloaded before an outage stopped the write
        try:
            return self._ending(delivery, event, job)
        except QuotaWait as wait:
            delivery.park(max(wait.wait_s, self._config.retry_s))
            return None
        except Retryable as error:
            return self._retry(delivery, event, f"API unavailable: {error}")
        except NotFound:
            return Ending(failure=f"scraping job {event.scrapingjob_id} not found in the API")
        except ApiError as error:  # refused (the token?): keep it for an operator to replay
            raise Reject(f"{event.custom_id}: the API refused a follow-up call: {error}") from None

    def _finish(self, ended: list[_Ended]) -> Iterator[tuple[int, BaseException]]:
        """Write the endings, all in one transaction; if that fails for a reason other
        than an outage, one at a time, so that one bad job does not hold back the rest.
        Yields the index and error of each that could not be written."""
        if not ended:
            return
        try:
            ages = self._jobs.finish_many([(e.job, e.event, e.ending) for e in ended])
        except Exception as error:
            if is_transient(error):
                self._keep_for_retry(ended)
                yield from ((e.index, error) for e in ended)
            elif len(ended) == 1:
                yield ended[0].index, error
            else:
                for one in ended:
                    yield from self._finish([one])
            return
        for e, age_s in zip(ended, ages, strict=True):
            self._log_end(e.job, e.ending, age_s)

    def _keep_for_retry(self, ended: list[_Ended]) -> None:
        """The API's answers, so that the retry after an outage writes them without
        calling the API again (bounded: a lost retry must not keep memory forever)."""
        if len(self._pending) > MAX_PENDING:
            self._pending.clear()
        self._pending.update((e.envelope_id, e.ending) for e in ended)

    def _check(self, delivery: Delivery, event: JobCompleted, job: JobRow | None) -> JobRow | None:
        """The notification's job, or None when there is nothing (more) to do."""
        if job is None:
            raise Reject(f"no tracking_job has custom_id {event.custom_id!r}")
        if job.job_id is None and job.status not in ENDED:
            return self._wait_for_job_id(delivery, event, job)
        if job.job_id != event.scrapingjob_id:
            raise Reject(
                f"{job.custom_id}: the notification is for scraping job {event.scrapingjob_id}, "
                f"the tracking_job has {job.job_id}"
            )
        if job.status in ENDED or job.processed:
            log.info("%s %s: already %s; duplicate notification", TAG, job.custom_id, job.status)
            return None
        return job

    def _wait_for_job_id(self, delivery: Delivery, event: JobCompleted, job: JobRow) -> None:
        """The publisher has not stored the job's id yet. While it has the job in hand
        (``publishing``: it is settling a create whose answer it lost, which takes at
        least its HTTP timeout) the notification waits, parked, costing no call; the
        publisher's own bound ends that state. Otherwise it waits a few times, then is
        dead-lettered with the reason, never acked and forgotten."""
        waiting = f"{job.custom_id} has no scraping job id stored yet"
        if job.status == "publishing":
            log.info("%s %s (publishing); again in %gs", TAG, waiting, self._config.retry_s)
            delivery.park(self._config.retry_s, **{ATTEMPTS: delivery.headers.get(ATTEMPTS, 0)})
            return None
        gave_up = self._retry(delivery, event, waiting)
        if gave_up is not None:
            raise Reject(f"{event.custom_id}: {gave_up.failure}")
        return None

    def _ending(self, delivery: Delivery, event: JobCompleted, job: JobRow) -> Ending | None:
        confirmed = _confirmed_from(delivery.headers) or self._confirm(event)
        if confirmed.status in ("failed", "stopped"):
            return Ending(failure=f"scraping job {confirmed.status}")
        if confirmed.status in RUNNING:
            return self._retry(delivery, event, f"the API still says {confirmed.status}")
        if confirmed.status != "finished":
            return Ending(failure=f"scraping job ended as {confirmed.status!r}")
        records = self._client.download_json(event.scrapingjob_id)
        record = record_for(records, job.target_url)
        if record is None:
            if confirmed.expects_record:
                late = f"no record for its URL yet ({len(records)} records)"
                return self._retry(delivery, event, late, confirmed)
            return Ending(failure=f"no data: {confirmed.problem or 'empty page'}")
        anchor = confirmed.created or dt.datetime.now(dt.UTC)
        return Ending(scraped=read_record(record, anchor))

    def _confirm(self, event: JobCompleted) -> Confirmed:
        scraping_job = self._client.get_job(event.scrapingjob_id)
        problems = {
            "failed page": _count(scraping_job, "jobs_failed"),
            "empty page": _count(scraping_job, "jobs_empty"),
        }
        problem = next((name for name, n in problems.items() if n), None)
        stored = _count(scraping_job, "stored_record_count")
        return Confirmed(
            status=str(scraping_job.get("status") or "unknown"),
            # records are promised, or nothing explains their absence
            expects_record=stored > 0 or problem is None,
            problem=problem,
            created=_unix(scraping_job.get("time_created")),
        )

    def _retry(
        self,
        delivery: Delivery,
        event: JobCompleted,
        reason: str,
        confirmed: Confirmed | None = None,
    ) -> Ending | None:
        """Park for another look; after ``max_retries`` the job ends failed with
        ``reason`` (None: parked)."""
        attempts = int(delivery.headers.get(ATTEMPTS) or 0)
        if attempts >= self._config.max_retries:
            return Ending(failure=f"{reason}; gave up after {attempts} retries")
        log.info("%s %s: %s; again in %gs", TAG, event.custom_id, reason, self._config.retry_s)
        notes: dict[str, Any] = {ATTEMPTS: attempts + 1}
        if confirmed is not None:
            notes.update({CONFIRMED: confirmed.status, EXPECTED: int(confirmed.expects_record)})
        delivery.park(self._config.retry_s, **notes)
        return None

    def _log_end(self, job: JobRow, ending: Ending, age_s: float | None) -> None:
        if age_s is None:
            log.info("%s %s: duplicate notification, nothing changed", TAG, job.custom_id)
            return
        scraped = ending.scraped
        JOBS_ENDED.labels("failed" if ending.failure else "completed").inc()
        if scraped is not None:
            for rule in scraped.rejected:
                VALIDATION_FAILURES.labels(rule).inc()
            if scraped.tracking_number:
                FILL_LATENCY.observe(age_s)
        if ending.failure:
            log.warning("%s %s failed: %s", TAG, job.custom_id, ending.failure)
        elif scraped is not None and scraped.tracking_number:
            log.info(
                "%s %s filled: tracking number %s, status %s",
                TAG,
                job.custom_id,
                scraped.tracking_number,
                scraped.delivery_status,
            )
        else:
            log.info("%s %s completed: %s", TAG, job.custom_id, ending.reason())
        if scraped is not None and scraped.rejected:
            log.warning(
                "%s %s rejected values: %s",
                TAG,
                job.custom_id,
                "; ".join(scraped.rejected.values()),
            )


def _confirmed_from(headers: Any) -> Confirmed | None:
    status = headers.get(CONFIRMED)
    if not status:
        return None
    return Confirmed(str(status), bool(int(headers.get(EXPECTED) or 0)))


def _count(scraping_job: dict[str, Any], key: str) -> int:
    try:
        return int(scraping_job.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _unix(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
