"""``python -m ingestor``: consumes ingestor.completions (fed by job.completed)."""

from __future__ import annotations

import logging
import sys
import threading

from ingestor.handler import CompletionHandler, IngestorConfig
from ingestor.jobs import NotifiedJobs
from shared import metrics
from shared.contracts import JobCompleted
from shared.db.rechecks import Recheck
from shared.lifecycle import service_settings, stop_on_signals
from shared.messaging.consuming import ConsumerLoop
from shared.messaging.publishing import connect
from shared.messaging.topology import INGESTOR_COMPLETIONS, ROUTES
from shared.settings import Settings
from shared.webscraper.access import api_access

log = logging.getLogger("trackfill.ingestor")


def build(settings: Settings, stop: threading.Event) -> ConsumerLoop:
    """Wire the ingestor's parts (tests build it the same way)."""
    return ConsumerLoop(
        lambda: connect(settings.amqp_url, settings.amqp_heartbeat_s),
        ROUTES[INGESTOR_COMPLETIONS],
        completion_handler(settings),
        stop,
        schema=JobCompleted.parse,
        group_size=settings.ingest_group_size,
    )


def completion_handler(settings: Settings) -> CompletionHandler:
    """The handler of a group of notifications, with its own database and API parts."""
    api = api_access(settings)
    return CompletionHandler(
        NotifiedJobs(api.sessions, Recheck(settings.schedule)),
        api.client,
        api.ledger,
        IngestorConfig(
            settings.ingest_retry_s, settings.ingest_max_retries, settings.recheck_max_s
        ),
    )


def main() -> int:
    settings = service_settings("ingestor", require=("WEBSCRAPER_API_TOKEN",))
    loop = build(settings, stop_on_signals())
    metrics.serve(settings.metrics_port)
    log.info("ingestor started")
    loop.run()
    log.info("ingestor stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
