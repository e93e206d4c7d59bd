"""What the ingestor says about a job it ended: its metrics and its log lines."""

from __future__ import annotations

import logging

from ingestor.jobs import Ending
from shared.db.jobs import TrackingJobRow
from shared.db.statuses import JobStatus
from shared.logs import TAG
from shared.metrics import FILL_LATENCY, JOBS_ENDED, STATUS_CODES, VALIDATION_FAILURES

log = logging.getLogger("trackfill.ingestor")


def report_end(job: TrackingJobRow, ending: Ending, age_s: float | None) -> None:
    """Count and log the ending of ``job`` (``age_s`` None: it had ended already)."""
    if age_s is None:
        log.info("%s %s: duplicate notification, nothing changed", TAG, job.custom_id)
        return
    _count(ending, age_s)
    scraped = ending.scraped
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
        rejected = "; ".join(scraped.rejected.values())
        log.warning("%s %s rejected values: %s", TAG, job.custom_id, rejected)


def _count(ending: Ending, age_s: float) -> None:
    JOBS_ENDED.labels(JobStatus.FAILED if ending.failure else JobStatus.COMPLETED).inc()
    scraped = ending.scraped
    if scraped is None:
        return
    for rule in scraped.rejected:
        VALIDATION_FAILURES.labels(rule).inc()
    if scraped.delivery_status_code is not None:
        STATUS_CODES.labels(scraped.delivery_status_code).inc()
    if scraped.tracking_number:
        FILL_LATENCY.observe(age_s)
