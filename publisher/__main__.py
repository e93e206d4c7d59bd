"""``python -m publisher``: the single active consumer of publisher.candidates."""

from __future__ import annotations

import logging
import sys

from publisher.handler import CandidateHandler, PublisherConfig
from publisher.jobs import Jobs
from shared import metrics
from shared.db.session import make_engine, make_session_factory
from shared.lifecycle import stop_on_signals
from shared.logs import setup_logging
from shared.messaging.consuming import ConsumerLoop
from shared.messaging.publishing import connect
from shared.messaging.topology import PUBLISHER_CANDIDATES, ROUTES
from shared.settings import Settings, SettingsError, load_settings
from shared.webscraper.client import WebScraperClient
from shared.webscraper.quota import QuotaLedger, QuotaPolicy

log = logging.getLogger("trackfill.publisher")


def build(settings: Settings, stop) -> ConsumerLoop:
    """Wire the publisher's parts (tests build it the same way)."""
    engine = make_engine(settings.database_url, connect_args={"connect_timeout": 5})
    sessions = make_session_factory(engine)
    ledger = QuotaLedger(sessions, QuotaPolicy.of(settings))
    metrics.register_database(sessions, ledger)
    client = WebScraperClient(
        settings.webscraper_api_url,
        settings.webscraper_api_token or "",
        ledger,
        settings.http_timeout_s,
    )
    handler = CandidateHandler(
        Jobs(sessions),
        ledger,
        client,
        PublisherConfig(settings.publish_max_attempts, settings.publish_retry_base_s),
    )
    return ConsumerLoop(
        lambda: connect(settings.amqp_url, settings.amqp_heartbeat_s),
        ROUTES[PUBLISHER_CANDIDATES],
        handler,
        stop,
    )


def main() -> int:
    try:
        settings = load_settings(require=["WEBSCRAPER_API_TOKEN"])
    except SettingsError as error:
        print(f"publisher: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format)
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
