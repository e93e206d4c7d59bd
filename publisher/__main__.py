"""``python -m publisher``: the single active consumer of publisher.candidates."""

from __future__ import annotations

import logging
import sys

from publisher.handler import CandidateHandler, PublisherConfig
from publisher.jobs import Jobs
from shared import metrics
from shared.lifecycle import service_settings, stop_on_signals
from shared.messaging.consuming import ConsumerLoop
from shared.messaging.publishing import connect
from shared.messaging.topology import PUBLISHER_CANDIDATES, ROUTES
from shared.settings import Settings
from shared.webscraper.access import api_access

log = logging.getLogger("trackfill.publisher")


def build(settings: Settings, stop) -> ConsumerLoop:
    """Wire the publisher's parts (tests build it the same way)."""
    api = api_access(settings)
    handler = CandidateHandler(
        Jobs(api.sessions),
        api.ledger,
        api.client,
        PublisherConfig(settings.publish_max_attempts, settings.publish_retry_base_s),
    )
    return ConsumerLoop(
        lambda: connect(settings.amqp_url, settings.amqp_heartbeat_s),
        ROUTES[PUBLISHER_CANDIDATES],
        handler,
        stop,
    )


def main() -> int:
    settings = service_settings("publisher", require=("WEBSCRAPER_API_TOKEN",))
    stop = stop_on_signals()
    loop = build(settings, stop)
    metrics.serve(settings.metrics_port)
    log.info(
        "publisher started (%d calls per %gs, creations at least %gs apart)",
        settings.api_quota_calls,
        settings.api_quota_window_s,
        settings.publish_min_interval_s,
    )
    loop.run()
    log.info("publisher stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
