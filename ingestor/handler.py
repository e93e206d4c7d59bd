"""One job.completed: check it, confirm it with the API, download, validate, write.

The webhook is a hint (WEBSCRAPER_API.md): the job's status and record count come from
``GET scraping-job/{id}``, then ``GET scraping-job/{id}/json`` gives the data; both go
through the shared quota ledger (the two follow-up calls the publisher leaves room for).
One notification covers every tracking_job of its scraping job (a pack): it is
confirmed and downloaded once, and each job gets the record of its own start URL
(compared normalised). A URL without a record is explained by the job's problem pages:
from its counts when they leave no doubt (only empty pages, or only failed ones, as many
as are missing), else from ``problematic-urls`` (paged); each such job fails with that
reason alone. A URL missing without explanation is late data: it is waited for parked
in ``ingestor.wait`` (a constant delay, so parked messages never expire behind a longer
one), while the jobs that have their records are written at once; the confirmed status
travels with the parked message, so a retry costs one download, not two calls, and
its URLs are not judged again (the first look found none of them a problem page).

A scrape the service has done is never given up for our trouble reading it: an API
outage is retried a few times parked, then the jobs stay open and the reconciler looks
again, backing off, until the API answers (data, problem pages or 404). A ``stopped``
job's URLs without a record or a problem end at once ("scraping job stopped"). Quota
waits park for the wait queue's one delay (its expirations never decrease) and look at
the ledger again; two notifications of one scraping job in a group cost one look.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ingestor.jobs import Ending, Found, Jobs
from ingestor.records import READERS, START_URL, url_key
from shared.contracts import JobCompleted
from shared.db.jobs import Job
from shared.db.statuses import ENDED, JobStatus
from shared.messaging.consuming import Delivery, Reject, is_transient
from shared.metrics import FILL_LATENCY, JOBS_ENDED, STATUS_CODES, VALIDATION_FAILURES
from shared.webscraper.client import (
    ApiError,
    NotFound,
    QuotaWait,
    Retryable,
    WebScraperClient,
)
from shared.webscraper.quota import QuotaLedger

log = logging.getLogger("trackfill.ingestor")
TAG = "[tracking_number_empty_worker]"
RUNNING = ("waiting-to-be-scheduled", "scheduled", "started", "shelved")
ATTEMPTS = "x-trackfill-attempts"
CONFIRMED = "x-trackfill-confirmed-status"
EMPTY = "x-trackfill-empty-pages"
FAILED = "x-trackfill-failed-pages"
MAX_PENDING = 1000


@dataclass(frozen=True)
class _Ended:
    """A notification whose job ends now: what to write, and whose outcome it is."""

    index: int
    envelope_id: str
    job: Job
    event: JobCompleted
    ending: Ending


@dataclass(frozen=True)
class IngestorConfig:
    retry_s: float
    max_retries: int
    #: the longest back-off between looks at a scraping job while the API is out
    outage_max_s: float = 3600.0


@dataclass(frozen=True)
class Confirmed:
    """What the API said about the job: its status and its problem pages' counts."""

    status: str
    empty: int = 0
    failed: int = 0
    created: dt.datetime | None = None
    #: records the job says it holds (None: not said, as on a parked retry)
    stored: int | None = None

    @property
    def problems(self) -> int:
        return self.empty + self.failed


class CompletionHandler:
    def __init__(
        self, jobs: Jobs, client: WebScraperClient, ledger: QuotaLedger, config: IngestorConfig
    ):
        self._jobs = jobs
        self._client = client
        self._ledger = ledger
        self._config = config
        #: endings not written because of an outage: envelope id -> custom_id -> ending
        self._pending: dict[str, dict[str, Ending]] = {}

    def __call__(self, deliveries: list[Delivery]) -> list[BaseException | None]:
        """Handle a group of notifications: each is checked and confirmed with the API on
        its own, then every job that ends is written in one transaction. One outcome per
        delivery (see :data:`shared.messaging.consuming.GroupHandler`)."""
        outcomes: list[BaseException | None] = [None] * len(deliveries)
        found = self._jobs.find_many([d.message for d in deliveries])
        ended: list[_Ended] = []
        seen: set[int] = set()
        with self._client.outcomes_together():
            for i, delivery in enumerate(deliveries):
                try:
                    endings = self._look_at(delivery, found, seen)
                except Exception as error:  # noqa: BLE001 - each delivery's own outcome
                    outcomes[i] = error
                    continue
                ended += (
                    _Ended(i, delivery.envelope.id, found.jobs[custom_id], delivery.message, ending)
                    for custom_id, ending in endings.items()
                )
        for i, outcome in self._finish(ended):
            outcomes[i] = outcome
        return outcomes

    def _look_at(self, delivery: Delivery, found: Found, seen: set[int]) -> dict[str, Ending]:
        """How the notification's jobs end now, by custom_id (empty: nothing to write)."""
        event: JobCompleted = delivery.message
        if self._check(delivery, event, found.jobs.get(event.custom_id)) is None:
            return {}
        if event.scrapingjob_id in seen:  # a webhook and a hint for one pack, say
            log.info("%s %s: duplicate notification in one group", TAG, event.custom_id)
            return {}
        seen.add(event.scrapingjob_id)
        pack = [
            job
            for job in found.jobs.values()
            if job.job_id == event.scrapingjob_id
            and job.status not in ENDED
            and job.custom_id not in found.processed
        ]
        if not pack:
            log.info("%s %s: every job ended already; duplicate notification", TAG, event.custom_id)
            return {}
        return self._settled(delivery, event, pack, found)

    def _settled(
        self,
        delivery: Delivery,
        event: JobCompleted,
        pack: list[Job],
        found: Found,
    ) -> dict[str, Ending]:
        """How the pack's jobs end, after the API calls (those waiting for late data, or
        all of them when the message was parked, are left out)."""
        endings = self._pending.pop(delivery.envelope.id, None)
        if endings is not None:
            return endings  # confirmed and downloaded before an outage stopped the write
        try:
            return self._endings(delivery, event, pack, found)
        except QuotaWait:
            # the wait queue's delay is constant (its expirations never decrease): a
            # longer wait comes back a few times, each a look at the ledger, not a call
            delivery.park(self._config.retry_s)
            return {}
        except Retryable as error:
            self._outage(delivery, event, f"API unavailable: {error}")
            return {}
        except NotFound:
            missing = Ending(failure=f"scraping job {event.scrapingjob_id} not found in the API")
            return {job.custom_id: missing for job in pack}
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
        for e in ended:
            self._pending.setdefault(e.envelope_id, {})[e.job.custom_id] = e.ending

    def _outage(self, delivery: Delivery, event: JobCompleted, reason: str) -> None:
        """The API did not answer: its scrape is never given up for that. A few quick
        retries parked, then (and at once for a reconciler's hint) the jobs stay open
        for the reconciler, whose looks back off until the API answers."""
        attempts = int(delivery.headers.get(ATTEMPTS) or 0)
        if not event.reconcile and attempts < self._config.max_retries:
            log.info("%s %s: %s; again in %gs", TAG, event.custom_id, reason, self._config.retry_s)
            delivery.park(self._config.retry_s, **{ATTEMPTS: attempts + 1})
            return
        self._jobs.look_later(event.scrapingjob_id, self._config.retry_s, self._config.outage_max_s)
        log.warning(
            "%s %s: %s; left open, the reconciler looks again", TAG, event.custom_id, reason
        )

    def _check(self, delivery: Delivery, event: JobCompleted, job: Job | None) -> Job | None:
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
        return job

    def _wait_for_job_id(self, delivery: Delivery, event: JobCompleted, job: Job) -> None:
        """The publisher has not stored the job's id yet. While it has the job in hand
        (``publishing``: it is settling a create whose answer it lost, which takes at
        least twice its HTTP timeout) the notification waits, parked, costing no call,
        and the scraping job it names is kept in the ledger as that create's: the
        publisher adopts it without searching. Otherwise it waits a few times, then is
        dead-lettered with the reason, never acked and forgotten."""
        waiting = f"{job.custom_id} has no scraping job id stored yet"
        if job.status == JobStatus.PUBLISHING:
            if event.custom_id == job.custom_id and self._ledger.adopt(
                job.custom_id, event.scrapingjob_id
            ):  # the publisher stores it when the pack comes back, with no search
                log.warning(
                    "%s %s: scraping job %s, whose create answer was lost, kept for it",
                    TAG,
                    job.custom_id,
                    event.scrapingjob_id,
                )
            log.info("%s %s (publishing); again in %gs", TAG, waiting, self._config.retry_s)
            delivery.park(self._config.retry_s, **{ATTEMPTS: delivery.headers.get(ATTEMPTS, 0)})
            return None
        gave_up = self._retry(delivery, event, [job], waiting)
        if gave_up:
            raise Reject(f"{event.custom_id}: {gave_up[job.custom_id].failure}")
        return None

    def _endings(
        self,
        delivery: Delivery,
        event: JobCompleted,
        pack: list[Job],
        found: Found,
    ) -> dict[str, Ending]:
        parked = _confirmed_from(delivery.headers)
        confirmed = parked or self._confirm(event)
        if confirmed.status in RUNNING:
            if event.reconcile:  # no webhook yet: the reconciler looks again later
                log.info("%s %s: reconciled, still %s", TAG, event.custom_id, confirmed.status)
                return {}
            return self._retry(delivery, event, pack, f"the API still says {confirmed.status}")
        if confirmed.status not in ("finished", "failed", "stopped"):
            unknown = Ending(failure=f"scraping job ended as {confirmed.status!r}")
            return {job.custom_id: unknown for job in pack}
        records = self._download(event, confirmed, pack)
        anchor = confirmed.created or dt.datetime.now(dt.UTC)
        reader = READERS[event.task]
        endings: dict[str, Ending] = {}
        missing: list[Job] = []
        for job in pack:
            record = reader.find(records, job.target_url, found.numbers.get(job.custom_id))
            if record is not None:
                endings[job.custom_id] = Ending(scraped=reader.read(record, anchor))
            else:
                missing.append(job)
        if not missing:
            return endings
        if confirmed.status != "finished" and not records and not confirmed.problems:
            # stopped, or failed as a whole, before any page was scraped
            whole = Ending(failure=f"scraping job {confirmed.status}")
            return {**endings, **{job.custom_id: whole for job in missing}}
        # a parked retry's URLs were judged on the first look: none is a problem page
        job_urls = {
            url_key(job.target_url)
            for job in found.jobs.values()
            if job.job_id == event.scrapingjob_id
        }
        problems = {} if parked else self._problems(event, confirmed, missing, job_urls, records)
        late: list[Job] = []
        for job in missing:
            problem = problems.get(url_key(job.target_url))
            if problem is not None:
                endings[job.custom_id] = Ending(failure=f"no data: {problem} page")
            elif confirmed.status == "stopped":  # its user stopped it before this page
                endings[job.custom_id] = Ending(failure="scraping job stopped")
            else:
                late.append(job)
        if late:
            reason = f"no record for its URL yet ({len(records)} records)"
            endings.update(self._retry(delivery, event, late, reason, confirmed))
        return endings

    def _download(
        self, event: JobCompleted, confirmed: Confirmed, pack: list[Job]
    ) -> list[dict[str, Any]]:
        """The job's records; no call when the job says it holds none and its problem
        pages (or its ending as a whole) account for every URL."""
        urls = {url_key(job.target_url) for job in pack}
        if confirmed.stored == 0 and (
            confirmed.status != "finished" or confirmed.problems >= len(urls)
        ):
            return []
        return self._client.download_json(event.scrapingjob_id)

    def _problems(
        self,
        event: JobCompleted,
        confirmed: Confirmed,
        missing: list[Job],
        job_urls: set[str],
        records: list[dict[str, Any]],
    ) -> dict[str, str]:
        """The problem type (``empty``, ``failed``) of the missing jobs' URLs, by
        :func:`url_key`: from the job's counts when they leave no doubt (they count
        the whole scraping job's pages, so only when the missing URLs are exactly the
        job's URLs without a record, as many as its problem pages, of one kind), else
        from the API's list of problematic URLs (one call a page of 100)."""
        if not confirmed.problems:
            return {}
        keys = {url_key(job.target_url) for job in missing}
        unexplained = job_urls - {url_key(str(r.get(START_URL) or "")) for r in records}
        one_kind = not (confirmed.empty and confirmed.failed)
        if keys == unexplained and len(keys) == confirmed.problems and one_kind:
            kind = "empty" if confirmed.empty else "failed"
            return dict.fromkeys(keys, kind)
        return {
            url_key(str(problem.get("url") or "")): str(problem.get("type") or "failed")
            for problem in self._client.problematic_urls(event.scrapingjob_id)
        }

    def _confirm(self, event: JobCompleted) -> Confirmed:
        scraping_job = self._client.get_job(event.scrapingjob_id)
        return Confirmed(
            status=str(scraping_job.get("status") or "unknown"),
            empty=_count(scraping_job, "jobs_empty"),
            failed=_count(scraping_job, "jobs_failed"),
            created=_unix(scraping_job.get("time_created")),
            stored=_count(scraping_job, "stored_record_count"),
        )

    def _retry(
        self,
        delivery: Delivery,
        event: JobCompleted,
        jobs: list[Job],
        reason: str,
        confirmed: Confirmed | None = None,
    ) -> dict[str, Ending]:
        """Park for another look at ``jobs``; after ``max_retries`` they end failed with
        ``reason`` (empty: parked)."""
        attempts = int(delivery.headers.get(ATTEMPTS) or 0)
        if attempts >= self._config.max_retries:
            gave_up = Ending(failure=f"{reason}; gave up after {attempts} retries")
            return {job.custom_id: gave_up for job in jobs}
        log.info("%s %s: %s; again in %gs", TAG, event.custom_id, reason, self._config.retry_s)
        notes: dict[str, Any] = {ATTEMPTS: attempts + 1}
        if confirmed is not None:
            notes.update(
                {CONFIRMED: confirmed.status, EMPTY: confirmed.empty, FAILED: confirmed.failed}
            )
        delivery.park(self._config.retry_s, **notes)
        return {}

    def _log_end(self, job: Job, ending: Ending, age_s: float | None) -> None:
        if age_s is None:
            log.info("%s %s: duplicate notification, nothing changed", TAG, job.custom_id)
            return
        scraped = ending.scraped
        JOBS_ENDED.labels(JobStatus.FAILED if ending.failure else JobStatus.COMPLETED).inc()
        if scraped is not None:
            for rule in scraped.rejected:
                VALIDATION_FAILURES.labels(rule).inc()
            if scraped.delivery_status_code is not None:
                STATUS_CODES.labels(scraped.delivery_status_code).inc()
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
    return Confirmed(str(status), int(headers.get(EMPTY) or 0), int(headers.get(FAILED) or 0))


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
