"""The tracking jobs' figures, read from the database when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from shared.db.jobs import StatusCount, by_status, jobs_by_task
from shared.db.statuses import IN_FLIGHT, JOB_STATUSES
from shared.tasks import TRACKING_TASK_CONFIGS


class JobFigures(Collector):
    """Jobs by status (and by task), and the age of the oldest job in flight."""

    def __init__(self, sessions: sessionmaker[Session], reconcile_after_s: float):
        self._sessions = sessions
        self._reconcile_after_s = reconcile_after_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._sessions() as session:
            by_task = jobs_by_task(session)
        counts = by_status(by_task)
        jobs = GaugeMetricFamily("trackfill_jobs", "Tracking jobs by status", labels=["status"])
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts[status].count if status in counts else 0)
        yield jobs
        yield from self._ages(counts)
        yield _by_task(by_task)

    def _ages(self, counts: dict[str, StatusCount]) -> Iterator[GaugeMetricFamily]:
        oldest = max((counts[s].oldest_age_s for s in IN_FLIGHT if s in counts), default=0.0)
        yield GaugeMetricFamily(
            "trackfill_oldest_in_flight_job_age_seconds",
            "Age of the oldest tracking job not ended yet (0: none); the reconciler looks "
            "again at one older than RECONCILE_AFTER_S",
            value=oldest,
        )
        yield GaugeMetricFamily(
            "trackfill_reconcile_after_seconds",
            "The setting RECONCILE_AFTER_S, for alerts on the age of the oldest job in flight",
            value=self._reconcile_after_s,
        )


def _by_task(counts: dict[tuple[str, str], StatusCount]) -> GaugeMetricFamily:
    jobs = GaugeMetricFamily(
        "trackfill_task_jobs", "Tracking jobs by task and status", labels=["task", "status"]
    )
    for task in TRACKING_TASK_CONFIGS:
        for status in JOB_STATUSES:
            count = counts[(task, status)].count if (task, status) in counts else 0
            jobs.add_metric([task, status], count)
    return jobs
