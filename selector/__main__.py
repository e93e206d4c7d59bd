"""``python -m selector``: until SIGTERM, a selection pass every ``SELECTOR_INTERVAL_S``
(or as the publisher runs short, under a backlog), each followed by the reconciler's look
at overdue jobs; and the tables' retention every few minutes."""

from __future__ import annotations

import logging
import sys
import time

from sqlalchemy.exc import InterfaceError, OperationalError

from selector.reconciling import Reconciler
from selector.service import Selector
from shared import metrics
from shared.db.retention import Kept, prune
from shared.db.session import make_engine, make_session_factory
from shared.lifecycle import service_settings, stop_on_signals
from shared.messaging.consuming import CONNECTION_ERRORS
from shared.messaging.publishing import MessagePublisher, PublishError, connect
from shared.webscraper.quota import QuotaLedger, QuotaPolicy

log = logging.getLogger("trackfill.selector")
OUTAGES = (OperationalError, InterfaceError, PublishError, *CONNECTION_ERRORS)
PRUNE_EVERY_S = 300.0


def wait_for_room(selector: Selector, stop, most_s: float, poll_s: float = 0.05) -> None:
    """Under a backlog: wait (at most ``most_s``) until the publisher runs short of jobs,
    so that the quota, not ``SELECTOR_INTERVAL_S``, sets the pace."""
    deadline = time.monotonic() + most_s
    while not stop.is_set() and time.monotonic() < deadline:
        if selector.waiting_for_publisher() < selector.feed_level:
            return
        stop.wait(poll_s)


def main() -> int:
    settings = service_settings("selector")
    stop = stop_on_signals()
    engine = make_engine(settings.database_url, connect_args={"connect_timeout": 5})
    sessions = make_session_factory(engine)
    policy = QuotaPolicy.of(settings)
    metrics.register_database(sessions, QuotaLedger(sessions, policy), settings.reconcile_after_s)
    metrics.serve(settings.metrics_port)
    log.info("selector started: a pass every %gs", settings.selector_interval_s)
    retry_s = min(settings.selector_interval_s, 5.0)
    kept = Kept(2 * policy.span_s, settings.processed_keep_s, settings.sync_log_keep_s)
    pruned_at = -PRUNE_EVERY_S
    while not stop.is_set():
        try:
            # a connection per pass: an idle one would miss its heartbeats for 15 minutes
            with connect(settings.amqp_url, settings.amqp_heartbeat_s) as connection:
                publisher = MessagePublisher(connection)
                selector = Selector(settings, sessions, publisher)
                result = selector.run_pass("daemon")
                Reconciler(settings, sessions, publisher, selector.task).run()
            if time.monotonic() - pruned_at >= PRUNE_EVERY_S:
                log.info("retention: %s", prune(sessions, kept))
                pruned_at = time.monotonic()
            if selector.backlog_after(result):
                wait_for_room(selector, stop, settings.selector_interval_s)
            else:
                stop.wait(settings.selector_interval_s)
        except OUTAGES as error:
            log.warning("pass failed (%s); retrying in %gs", str(error).splitlines()[0], retry_s)
            stop.wait(retry_s)
    engine.dispose()
    log.info("selector stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
