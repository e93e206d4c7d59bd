"""``python -m selector``: until SIGTERM, a selection pass of each enabled task every
``SELECTOR_INTERVAL_S`` (or as the publisher runs short of the task's jobs, under a
backlog; the refresh within its share, see :mod:`selector.sharing`), each followed by
the reconciler's look at that task's overdue jobs; and the tables' retention every few
minutes."""

from __future__ import annotations

import logging
import sys
import time

from sqlalchemy.exc import InterfaceError, OperationalError

from selector.reconciling import Reconciler
from selector.service import Selector
from selector.sharing import Share
from shared import metrics
from shared.db.credits import CreditFigures
from shared.db.figures import JobFigures
from shared.db.retention import Kept, prune
from shared.db.session import make_engine, make_session_factory
from shared.lifecycle import service_settings, stop_on_signals
from shared.messaging.consuming import CONNECTION_ERRORS
from shared.messaging.publishing import MessagePublisher, PublishError, connect
from shared.quota import QuotaLedger, QuotaPolicy
from shared.quota.figures import QuotaFigures
from shared.settings import Settings
from shared.tasks import TaskConfig, enabled_tasks
from shared.webscraper.client import WebScraperClient
from shared.webscraper.credits import CreditReader

log = logging.getLogger("trackfill.selector")
OUTAGES = (OperationalError, InterfaceError, PublishError, *CONNECTION_ERRORS)
PRUNE_EVERY_S = 300.0
POLL_S = 0.05


class Feed:
    """When each task's next pass is due: ``SELECTOR_INTERVAL_S`` after its last one,
    or sooner under a backlog, once the publisher runs short of its jobs and the share
    allows it."""

    def __init__(self, settings: Settings, sessions, tasks: list[TaskConfig], share: Share):
        self._settings = settings
        self.sessions = sessions
        self._share = share
        self.tasks = tasks
        self._last: dict[str, float] = {}
        self.backlogged: dict[str, bool] = {}

    def selector(self, task: TaskConfig, publisher: MessagePublisher | None = None) -> Selector:
        """The task's selector; held to its share, a pass takes one pack at most."""
        limit = task.pack_size(self._settings) if self._held(task) else None
        return Selector(self._settings, self.sessions, publisher, task, limit)

    def _held(self, task: TaskConfig) -> bool:
        """``task`` is held to its share now: it does not seek numbers, and a task that
        does has a backlog."""
        return not task.seeks_number and any(
            self.backlogged.get(t.name) for t in self.tasks if t.seeks_number
        )

    def due(self, task: TaskConfig) -> bool:
        held = self._held(task)
        if held and not self._share.allows(task):
            return False
        last = self._last.get(task.name)
        if last is None or time.monotonic() - last >= self._settings.selector_interval_s:
            return True
        if not self.backlogged.get(task.name):
            return False
        if held:  # the share allows it, and every job it has is planned already
            return True
        selector = self.selector(task)
        return selector.waiting_for_publisher() < selector.feed_level

    def ran(self, task: TaskConfig, backlog: bool) -> None:
        self._last[task.name] = time.monotonic()
        self.backlogged[task.name] = backlog

    def wait(self, stop) -> None:
        """Until a task is due (or ``stop``)."""
        while not stop.is_set() and not any(self.due(task) for task in self.tasks):
            idle_s = min(1.0, self._settings.selector_interval_s)
            stop.wait(POLL_S if any(self.backlogged.values()) else idle_s)


def run_due(feed: Feed, settings: Settings, credits: CreditReader | None = None) -> None:
    """One connection: the account's page credits read if due, a pass of each due task,
    then the reconciler's look at every task's overdue jobs (a task held back by its
    share still has jobs in flight)."""
    if credits is not None:
        credits.current()
    # a connection per round: an idle one would miss its heartbeats for 15 minutes
    with connect(settings.amqp_url, settings.amqp_heartbeat_s) as connection:
        publisher = MessagePublisher(connection)
        for task in feed.tasks:
            if not feed.due(task):
                continue
            selector = feed.selector(task, publisher)
            result = selector.run_pass("daemon")
            feed.ran(task, selector.backlog_after(result))
        for task in feed.tasks:
            Reconciler(settings, feed.sessions, publisher, task).run()


def credit_reader(settings: Settings, sessions, ledger: QuotaLedger) -> CreditReader | None:
    """The account's page-credit reader (None without an API token: the reserve then
    holds by the last reading another replica made)."""
    if not settings.webscraper_api_token:
        log.warning("WEBSCRAPER_API_TOKEN is not set: the page credits are not read here")
        return None
    client = WebScraperClient(
        settings.webscraper_api_url,
        settings.webscraper_api_token,
        ledger,
        settings.http_timeout_s,
    )
    return CreditReader(sessions, client, settings.page_credits_read_s)


def main() -> int:
    settings = service_settings("selector")
    stop = stop_on_signals()
    engine = make_engine(settings.database_url, connect_args={"connect_timeout": 5})
    sessions = make_session_factory(engine)
    policy = QuotaPolicy.of(settings)
    metrics.register(JobFigures(sessions, settings.reconcile_after_s))
    ledger = QuotaLedger(sessions, policy)
    metrics.register(QuotaFigures(ledger))
    metrics.register(CreditFigures(sessions, settings.page_credits_reserve))
    metrics.serve(settings.metrics_port)
    credits = credit_reader(settings, sessions, ledger)
    tasks = list(enabled_tasks(settings))
    share = Share(sessions, policy, settings.refresh_max_share)
    feed = Feed(settings, sessions, tasks, share)
    log.info(
        "selector started: a pass every %gs for %s",
        settings.selector_interval_s,
        ", ".join(task.name for task in tasks),
    )
    retry_s = min(settings.selector_interval_s, 5.0)
    kept = Kept(
        2 * policy.span_s,
        settings.processed_keep_s,
        settings.sync_log_keep_s,
        outbox=settings.processed_keep_s,
    )
    pruned_at = -PRUNE_EVERY_S
    while not stop.is_set():
        try:
            run_due(feed, settings, credits)
            if time.monotonic() - pruned_at >= PRUNE_EVERY_S:
                log.info("retention: %s", prune(sessions, kept))
                pruned_at = time.monotonic()
            feed.wait(stop)
        except OUTAGES as error:
            log.warning("pass failed (%s); retrying in %gs", str(error).splitlines()[0], retry_s)
            stop.wait(retry_s)
    engine.dispose()
    log.info("selector stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
