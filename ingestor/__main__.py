"""``python -m ingestor``: consumes ingestor.completions (fed by job.completed)."""

from __future__ import annotations

import logging
import sys
import threading

from ingestor.handler import CompletionHandler, IngestorConfig
from ingestor.jobs import Jobs, Recheck
from shared import metrics
from shared.db.session import make_engine, make_session_factory
from shared.lifecycle import stop_on_signals
from shared.logs import setup_logging
from shared.messaging.consuming import ConsumerLoop
from shared.messaging.publishing import connect
from shared.messaging.topology import INGESTOR_COMPLETIONS, ROUTES
from shared.settings import Settings, SettingsError, load_settings
from shared.webscraper.client import WebScraperClient
from shared.webscraper.quota import QuotaLedger, QuotaPolicy

log = logging.getLogger("trackfill.ingestor")


def build(settings: Settings, stop: threading.Event) -> ConsumerLoop:
    """Wire the ingestor's parts (tests build it the same way)."""
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
    handler = CompletionHandler(
        Jobs(sessions, Recheck(settings.recheck_base_s, settings.recheck_max_s)),
        client,
        IngestorConfig(settings.ingest_retry_s, settings.ingest_max_retries),
    )
    return ConsumerLoop(
        lambda: connect(settings.amqp_url, settings.amqp_heartbeat_s),
        ROUTES[INGESTOR_COMPLETIONS],
        handler,
        stop,
    )


def main() -> int:
    try:
        settings = load_settings(require=["WEBSCRAPER_API_TOKEN"])
    except SettingsError as error:
        print(f"ingestor: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format)
    loop = build(settings, stop_on_signals())
    metrics.serve(settings.metrics_port)
    log.info("ingestor started")
    loop.run()
    log.info("ingestor stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
