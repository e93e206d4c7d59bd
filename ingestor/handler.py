"""One job.completed: check it, confirm it with the API, download, validate, write.

The webhook is a hint (docs/webscraper-api.md): the job's status and record count come from
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

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from ingestor.endings import ATTEMPTS, IngestorConfig, NotificationInHand, retry
from ingestor.jobs import Ending, Found, NotifiedJobs
from ingestor.report import report_end
from shared.contracts import JobCompleted
from shared.db.jobs import TrackingJobRow
from shared.db.statuses import ENDED, JobStatus
from shared.logs import TAG
from shared.messaging.consuming import Delivery, Reject, is_transient
from shared.quota import QuotaLedger
from shared.webscraper.client import (
    ApiError,
    NotFound,
    QuotaWait,
    Retryable,
    WebScraperClient,
)

log = logging.getLogger("trackfill.ingestor")
__all__ = ["CompletionHandler", "IngestorConfig"]
MAX_PENDING = 1000


@dataclass(frozen=True)
class _Ended:
    """A notification whose job ends now: what to write, and whose outcome it is."""

    index: int
    envelope_id: str
    job: TrackingJobRow
    event: JobCompleted
    ending: Ending


class CompletionHandler:
    def __init__(
        self,
        jobs: NotifiedJobs,
        client: WebScraperClient,
        ledger: QuotaLedger,
        config: IngestorConfig,
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
        if event.scraping_job_id in seen:  # a webhook and a hint for one pack, say
            log.info("%s %s: duplicate notification in one group", TAG, event.custom_id)
            return {}
        seen.add(event.scraping_job_id)
        pack = [
            job
            for job in found.jobs.values()
            if job.scraping_job_id == event.scraping_job_id
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
        pack: list[TrackingJobRow],
        found: Found,
    ) -> dict[str, Ending]:
        """How the pack's jobs end, after the API calls (those waiting for late data, or
        all of them when the message was parked, are left out)."""
        endings = self._pending.pop(delivery.envelope.id, None)
        if endings is not None:
            return endings  # confirmed and downloaded before an outage stopped the write
        try:
            return NotificationInHand(delivery, pack, found, self._client, self._config).endings()
        except QuotaWait:
            # the wait queue's delay is constant (its expirations never decrease): a
            # longer wait comes back a few times, each a look at the ledger, not a call
            delivery.park(self._config.retry_s)
            return {}
        except Retryable as error:
            self._outage(delivery, event, f"API unavailable: {error}")
            return {}
        except NotFound:
            missing = Ending(failure=f"scraping job {event.scraping_job_id} not found in the API")
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
            report_end(e.job, e.ending, age_s)

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
        self._jobs.look_later(
            event.scraping_job_id, self._config.retry_s, self._config.outage_max_s
        )
        log.warning(
            "%s %s: %s; left open, the reconciler looks again", TAG, event.custom_id, reason
        )

    def _check(
        self, delivery: Delivery, event: JobCompleted, job: TrackingJobRow | None
    ) -> TrackingJobRow | None:
        """The notification's job, or None when there is nothing (more) to do."""
        if job is None:
            raise Reject(f"no tracking_job has custom_id {event.custom_id!r}")
        if job.scraping_job_id is None and job.status not in ENDED:
            return self._wait_for_job_id(delivery, event, job)
        if job.scraping_job_id != event.scraping_job_id:
            raise Reject(
                f"{job.custom_id}: the notification is for scraping job {event.scraping_job_id}, "
                f"the tracking_job has {job.scraping_job_id}"
            )
        return job

    def _wait_for_job_id(
        self, delivery: Delivery, event: JobCompleted, job: TrackingJobRow
    ) -> None:
        """The publisher has not stored the job's id yet. While it has the job in hand
        (``publishing``: it is settling a create whose answer it lost, which takes at
        least twice its HTTP timeout) the notification waits, parked, costing no call,
        and the scraping job it names is kept in the ledger as that create's: the
        publisher adopts it without searching. Otherwise it waits a few times, then is
        dead-lettered with the reason, never acked and forgotten."""
        waiting = f"{job.custom_id} has no scraping job id stored yet"
        if job.status == JobStatus.PUBLISHING:
            if event.custom_id == job.custom_id and self._ledger.answers.adopt(
                job.custom_id, event.scraping_job_id
            ):  # the publisher stores it when the pack comes back, with no search
                log.warning(
                    "%s %s: scraping job %s, whose create answer was lost, kept for it",
                    TAG,
                    job.custom_id,
                    event.scraping_job_id,
                )
            log.info("%s %s (publishing); again in %gs", TAG, waiting, self._config.retry_s)
            delivery.park(self._config.retry_s, **{ATTEMPTS: delivery.headers.get(ATTEMPTS, 0)})
            return None
        gave_up = retry(delivery, [job], waiting, self._config)
        if gave_up:
            raise Reject(f"{event.custom_id}: {gave_up[job.custom_id].failure}")
        return None
