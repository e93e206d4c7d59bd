"""How one notification's jobs end: the job confirmed with the API, its records
downloaded and matched to the jobs by start URL, and each URL without a record explained
by the job's problem pages or waited for as late data (see :mod:`ingestor.handler`).

One :class:`NotificationInHand` per notification in hand, holding what every step reads:
its delivery, its event, the jobs of its pack and what the group found of them."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from ingestor.jobs import Ending, Found
from ingestor.records import READERS, START_URL, url_key
from shared.contracts import JobCompleted
from shared.db.jobs import TrackingJobRow
from shared.logs import TAG
from shared.messaging.consuming import Delivery
from shared.webscraper.client import WebScraperClient

log = logging.getLogger("trackfill.ingestor")
RUNNING = ("waiting-to-be-scheduled", "scheduled", "started", "shelved")
ENDED_AS = ("finished", "failed", "stopped")
ATTEMPTS = "x-trackfill-attempts"
CONFIRMED = "x-trackfill-confirmed-status"
EMPTY = "x-trackfill-empty-pages"
FAILED = "x-trackfill-failed-pages"


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


class NotificationInHand:
    def __init__(
        self,
        delivery: Delivery,
        pack: list[TrackingJobRow],
        found: Found,
        client: WebScraperClient,
        config: IngestorConfig,
    ):
        self.delivery = delivery
        self.event: JobCompleted = delivery.message
        self.pack = pack
        self._found = found
        self._client = client
        self._config = config
        #: the status confirmed on the first look, when this is a parked retry
        self._parked = _confirmed_from(delivery.headers)

    def endings(self) -> dict[str, Ending]:
        """How the pack's jobs end now, by custom_id (those waiting are left out). Raises
        the client's errors (a quota wait, an outage, a 404) for the handler to decide."""
        confirmed = self._parked or self._confirm()
        if confirmed.status in RUNNING:
            if self.event.reconcile:  # no webhook yet: the reconciler looks again later
                log.info("%s %s: reconciled, still %s", TAG, self.event.custom_id, confirmed.status)
                return {}
            return self.retry(self.pack, f"the API still says {confirmed.status}")
        if confirmed.status not in ENDED_AS:
            unknown = Ending(failure=f"scraping job ended as {confirmed.status!r}")
            return {job.custom_id: unknown for job in self.pack}
        records = self._download(confirmed)
        endings, missing = self._matched(records, confirmed)
        if not missing:
            return endings
        if confirmed.status != "finished" and not records and not confirmed.problems:
            # stopped, or failed as a whole, before any page was scraped
            whole = Ending(failure=f"scraping job {confirmed.status}")
            return {**endings, **{job.custom_id: whole for job in missing}}
        return {**endings, **self._unmatched(missing, records, confirmed)}

    def _matched(
        self, records: list[dict[str, Any]], confirmed: Confirmed
    ) -> tuple[dict[str, Ending], list[TrackingJobRow]]:
        """The endings of the jobs whose record is there, and the jobs without one."""
        anchor = confirmed.created or dt.datetime.now(dt.UTC)
        reader = READERS[self.event.task]
        endings: dict[str, Ending] = {}
        missing: list[TrackingJobRow] = []
        for job in self.pack:
            number = self._found.numbers.get(job.custom_id)
            record = reader.find(records, job.target_url, number)
            if record is not None:
                endings[job.custom_id] = Ending(scraped=reader.read(record, anchor, number))
            else:
                missing.append(job)
        return endings, missing

    def _unmatched(
        self, missing: list[TrackingJobRow], records: list[dict[str, Any]], confirmed: Confirmed
    ) -> dict[str, Ending]:
        """The jobs without a record: a problem page fails one, a stopped job ends the
        rest, and what is left is late data, waited for."""
        # a parked retry's URLs were judged on the first look: none is a problem page
        problems = {} if self._parked else self._problems(confirmed, missing, records)
        endings: dict[str, Ending] = {}
        late: list[TrackingJobRow] = []
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
            endings.update(self.retry(late, reason, confirmed))
        return endings

    def _download(self, confirmed: Confirmed) -> list[dict[str, Any]]:
        """The job's records; no call when the job says it holds none and its problem
        pages (or its ending as a whole) account for every URL."""
        urls = {url_key(job.target_url) for job in self.pack}
        if confirmed.stored == 0 and (
            confirmed.status != "finished" or confirmed.problems >= len(urls)
        ):
            return []
        return self._client.download_json(self.event.scraping_job_id)

    def _problems(
        self, confirmed: Confirmed, missing: list[TrackingJobRow], records: list[dict[str, Any]]
    ) -> dict[str, str]:
        """The problem type (``empty``, ``failed``) of the missing jobs' URLs, by
        :func:`url_key`: from the job's counts when they leave no doubt (they count
        the whole scraping job's pages, so only when the missing URLs are exactly the
        job's URLs without a record, as many as its problem pages, of one kind), else
        from the API's list of problematic URLs (one call a page of 100)."""
        if not confirmed.problems:
            return {}
        keys = {url_key(job.target_url) for job in missing}
        unexplained = self._job_urls() - {url_key(str(r.get(START_URL) or "")) for r in records}
        one_kind = not (confirmed.empty and confirmed.failed)
        if keys == unexplained and len(keys) == confirmed.problems and one_kind:
            kind = "empty" if confirmed.empty else "failed"
            return dict.fromkeys(keys, kind)
        return {
            url_key(str(problem.get("url") or "")): str(problem.get("type") or "failed")
            for problem in self._client.problematic_urls(self.event.scraping_job_id)
        }

    def _job_urls(self) -> set[str]:
        """Every URL of the scraping job, of its jobs ended or not."""
        return {
            url_key(job.target_url)
            for job in self._found.jobs.values()
            if job.scraping_job_id == self.event.scraping_job_id
        }

    def _confirm(self) -> Confirmed:
        scraping_job = self._client.get_job(self.event.scraping_job_id)
        return Confirmed(
            status=str(scraping_job.get("status") or "unknown"),
            empty=_count(scraping_job, "jobs_empty"),
            failed=_count(scraping_job, "jobs_failed"),
            created=_unix(scraping_job.get("time_created")),
            stored=_count(scraping_job, "stored_record_count"),
        )

    def retry(
        self, jobs: list[TrackingJobRow], reason: str, confirmed: Confirmed | None = None
    ) -> dict[str, Ending]:
        """Park for another look at ``jobs`` (see :func:`retry`)."""
        return retry(self.delivery, jobs, reason, self._config, confirmed)


def retry(
    delivery: Delivery,
    jobs: list[TrackingJobRow],
    reason: str,
    config: IngestorConfig,
    confirmed: Confirmed | None = None,
) -> dict[str, Ending]:
    """Park ``delivery`` for another look at ``jobs``, the status ``confirmed`` on this
    look travelling with it; after ``max_retries`` they end failed with ``reason``
    (empty: parked)."""
    attempts = int(delivery.headers.get(ATTEMPTS) or 0)
    if attempts >= config.max_retries:
        gave_up = Ending(failure=f"{reason}; gave up after {attempts} retries")
        return {job.custom_id: gave_up for job in jobs}
    log.info("%s %s: %s; again in %gs", TAG, delivery.message.custom_id, reason, config.retry_s)
    notes: dict[str, Any] = {ATTEMPTS: attempts + 1}
    if confirmed is not None:
        notes.update(
            {CONFIRMED: confirmed.status, EMPTY: confirmed.empty, FAILED: confirmed.failed}
        )
    delivery.park(config.retry_s, **notes)
    return {}


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
