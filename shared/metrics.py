"""Prometheus metrics of every service (prometheus_client), one definition each.

Counters count what a process did since it started; the figures that live in the
database (jobs by status, the quota used in the current window) are read at scrape time
by collectors that live with what they read (:mod:`shared.db.figures`,
:mod:`shared.quota.figures`), so every replica reports the same truth. Every service
serves them on ``METRICS_PORT`` (0: off), never on the gateway's public webhook port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import REGISTRY
from prometheus_client.registry import Collector

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
EVENTS_RELAYED = Counter(
    "trackfill_tracking_updated_relayed_total",
    "tracking.updated events published from the outbox (confirmed by RabbitMQ)",
)
FILL_LATENCY = Histogram(
    "trackfill_fill_latency_seconds",
    "From selection (the job's creation) to the tracking number written",
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600, 86400),
)


_registered: dict[tuple[int, type], Collector] = {}


def register(collector: Collector, registry: CollectorRegistry = REGISTRY) -> None:
    """Report ``collector``'s figures, replacing an earlier collector of its kind (a
    process reports one database; tests build services more than once)."""
    key = (id(registry), type(collector))
    earlier = _registered.pop(key, None)
    if earlier is not None:
        registry.unregister(earlier)
    _registered[key] = collector
    registry.register(collector)


def serve(port: int) -> None:
    """Serve the metrics on ``port`` in a background thread (0: not at all)."""
    if port:
        start_http_server(port)
