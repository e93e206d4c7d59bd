"""``python -m ingestor``: consumes ingestor.completions (fed by job.completed), and
relays the outbox's tracking.updated events (docs/events.md) from a thread beside."""

from __future__ import annotations

import logging
import sys
import threading

from sqlalchemy.orm import Session, sessionmaker

from ingestor.handler import CompletionHandler, IngestorConfig
from ingestor.jobs import NotifiedJobs
from ingestor.relay import OutboxRelay
from shared import metrics
from shared.contracts import JobCompleted
from shared.db.rechecks import Recheck
from shared.db.session import make_engine, make_session_factory
from shared.lifecycle import service_settings, stop_on_signals
from shared.messaging.consuming import ConsumerLoop
from shared.messaging.publishing import MessagePublisher, connect
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


def relay(settings: Settings, sessions: sessionmaker[Session]) -> OutboxRelay:
    """The outbox relay, on a publishing connection of its own (kombu's are one a thread)."""
    connection = connect(settings.amqp_url, settings.amqp_heartbeat_s)
    return OutboxRelay(sessions, MessagePublisher(connection))


def main() -> int:
    settings = service_settings("ingestor", require=("WEBSCRAPER_API_TOKEN",))
    stop = stop_on_signals()
    loop = build(settings, stop)
    engine = make_engine(settings.database_url, connect_args={"connect_timeout": 5})
    relaying = threading.Thread(
        target=relay(settings, make_session_factory(engine)).run,
        args=(stop,),
        name="outbox-relay",
    )
    metrics.serve(settings.metrics_port)
    log.info("ingestor started (and its outbox relay)")
    relaying.start()
    loop.run()
    stop.set()
    relaying.join(10)
    engine.dispose()
    log.info("ingestor stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
