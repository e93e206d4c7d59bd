"""Prometheus metrics of every service (prometheus_client), one definition each.

Counters count what a process did since it started; the figures that live in the
database (jobs by status, the quota used in the current window) are read at scrape time
by :class:`DatabaseCollector`, so every replica reports the same truth. Every service
serves them on ``METRICS_PORT`` (0: off), never on the gateway's public webhook port.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from shared.db.jobs import StatusCount, by_status, jobs_by_task
from shared.db.statuses import IN_FLIGHT, JOB_STATUSES
from shared.tasks import TRACKING_TASK_CONFIGS
from shared.webscraper.quota import QuotaLedger

API_CALLS = Counter(
    "trackfill_api_calls_total",
    "Calls to the Web Scraper API by kind and outcome (HTTP status, timeout, error)",
    ["kind", "outcome"],
)
PARKINGS = Counter(
    "trackfill_parkings_total", "Messages parked in a wait queue (per-message TTL)", ["queue"]
)
CANDIDATES_SELECTED = Counter(
    "trackfill_candidates_selected_total", "Purchases selected and published as candidates"
)
CANDIDATES_SKIPPED = Counter(
    "trackfill_candidates_skipped_total", "Matching purchases skipped, by reason", ["reason"]
)
WEBHOOKS = Counter("trackfill_webhooks_total", "Webhook requests by outcome", ["outcome"])
VALIDATION_FAILURES = Counter(
    "trackfill_validation_failures_total", "Scraped values refused, by rule", ["rule"]
)
STATUS_CODES = Counter(
    "trackfill_delivery_status_codes_total",
    "Delivery statuses written, by normalised code (unknown: a status no rule knows, "
    "stored and checked again)",
    ["code"],
)
RECONCILED = Counter(
    "trackfill_reconciled_total",
    "In-flight jobs looked at again by the reconciler: a job.completed hint for a scraping "
    "job without an ending, or a candidate.found re-sent for a job without a scraping job",
    ["action"],
)
JOBS_ENDED = Counter("trackfill_jobs_ended_total", "Tracking jobs ended, by status", ["status"])
FILL_LATENCY = Histogram(
    "trackfill_fill_latency_seconds",
    "From selection (the job's creation) to the tracking number written",
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600, 86400),
)


class DatabaseCollector(Collector):
    """Jobs by status, the oldest job in flight and the quota of the current window,
    read when scraped."""

    def __init__(
        self, sessions: sessionmaker[Session], ledger: QuotaLedger, reconcile_after_s: float
    ):
        self._sessions = sessions
        self._ledger = ledger
        self._reconcile_after_s = reconcile_after_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("trackfill_jobs", "Tracking jobs by status", labels=["status"])
        with self._sessions() as session:
            by_task = jobs_by_task(session)
        counts = by_status(by_task)
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts[status].count if status in counts else 0)
        yield jobs
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
        yield from self._tasks(by_task)
        used = self._ledger.used_in_window()
        yield GaugeMetricFamily(
            "trackfill_quota_used_calls", "API calls in the current quota window", value=used
        )
        yield GaugeMetricFamily(
            "trackfill_quota_left_calls",
            "API calls left in the current quota window",
            value=max(0, self._ledger.policy.calls - used),
        )

    def _tasks(self, counts: dict[tuple[str, str], StatusCount]) -> Iterator[GaugeMetricFamily]:
        """Each task's jobs by status, and its creations in the current quota window."""
        jobs = GaugeMetricFamily(
            "trackfill_task_jobs", "Tracking jobs by task and status", labels=["task", "status"]
        )
        for task in TRACKING_TASK_CONFIGS:
            for status in JOB_STATUSES:
                jobs.add_metric(
                    [task, status], counts[(task, status)].count if (task, status) in counts else 0
                )
        yield jobs
        made = self._ledger.creations_by_prefix()
        creations = GaugeMetricFamily(
            "trackfill_task_creations_in_window",
            "Scraping jobs created in the current quota window, by task (the refresh "
            "keeps to REFRESH_MAX_SHARE of them under a tracking-number backlog)",
            labels=["task"],
        )
        for task in TRACKING_TASK_CONFIGS.values():
            creations.add_metric([task.name], made.get(task.custom_id_prefix, 0))
        yield creations


_registered: dict[int, DatabaseCollector] = {}


def register_database(
    sessions: sessionmaker[Session],
    ledger: QuotaLedger,
    reconcile_after_s: float,
    registry: CollectorRegistry = REGISTRY,
) -> None:
    """Report the database's figures from ``sessions`` (replacing any earlier ones: a
    process reports one database; tests build services more than once)."""
    earlier = _registered.pop(id(registry), None)
    if earlier is not None:
        registry.unregister(earlier)
    _registered[id(registry)] = collector = DatabaseCollector(sessions, ledger, reconcile_after_s)
    registry.register(collector)


def serve(port: int) -> None:
    """Serve the metrics on ``port`` in a background thread (0: not at all)."""
    if port:
        start_http_server(port)
