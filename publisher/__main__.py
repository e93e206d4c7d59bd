"""``python -m publisher``: the single active consumer of publisher.candidates."""

from __future__ import annotations

import logging
import sys

from publisher.handler import CandidateHandler, PublisherConfig
from publisher.jobs import CandidateJobs
from publisher.packs import Packs
from shared import metrics
from shared.contracts import CandidateFound
from shared.db.rechecks import Recheck
from shared.lifecycle import service_settings, stop_on_signals
from shared.messaging.consuming import ConsumerLoop
from shared.messaging.publishing import connect
from shared.messaging.topology import PUBLISHER_CANDIDATES, ROUTES, ConsumerRoute
from shared.settings import Settings
from shared.tasks import enabled_tasks
from shared.webscraper.access import api_access

log = logging.getLogger("trackfill.publisher")
#: candidates held unacked at once (a larger pack is filled across groups)
MAX_PREFETCH = 1000


def build(settings: Settings, stop, route: ConsumerRoute | None = None) -> ConsumerLoop:
    """Wire the publisher's parts (tests build it the same way; ``route`` lets a test
    consume fewer of its queues)."""
    return ConsumerLoop(
        lambda: connect(settings.amqp_url, settings.amqp_heartbeat_s),
        route or ROUTES[PUBLISHER_CANDIDATES],
        candidate_handler(settings),
        stop,
        schema=CandidateFound.parse,
        # the candidates that arrive together are packed together: a pack's size of them
        group_size=min(pack_size(settings), MAX_PREFETCH),
    )


def pack_size(settings: Settings) -> int:
    """The most candidates in one pack of an enabled task (ten share a Japan Post URL)."""
    sizes = (task.pack_size(settings) for task in enabled_tasks(settings))
    return max(sizes, default=settings.publish_max_urls_per_job)


def candidate_handler(settings: Settings) -> CandidateHandler:
    """The handler of one candidate, with its own connections to the database and API."""
    api = api_access(settings)
    recheck = Recheck(settings.schedule)
    return CandidateHandler(
        CandidateJobs(api.sessions),
        Packs(api.sessions, recheck, settings.publish_max_urls_per_job, settings.reconcile_after_s),
        api.ledger,
        api.client,
        PublisherConfig(
            settings.publish_max_attempts,
            settings.publish_retry_base_s,
            settle_after_s=2 * settings.http_timeout_s,  # the timeout bounds a wait, not the work
            sitemaps={task.name: task.sitemap_in(settings) for task in enabled_tasks(settings)},
        ),
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
