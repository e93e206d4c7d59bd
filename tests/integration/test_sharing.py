"""The quota between the two tasks under a backlog of both (issue 17): the selector
daemon's feed and the real publisher against the simulator, time compressed; the
tracking-number task keeps at least three quarters of the creations."""

from __future__ import annotations

import contextlib
import threading

import pytest
from sqlalchemy import func

from publisher.__main__ import build as build_publisher
from selector.__main__ import Feed, run_due
from selector.sharing import Share
from shared.db.models import ApiCall
from shared.db.session import make_session_factory
from shared.quota import QuotaPolicy
from shared.settings import load_settings
from shared.tasks import JAPAN_POST_TRACKING_10 as JAPAN_POST
from shared.tasks import enabled_tasks
from tests.support import rows
from tests.support.env import services_env
from tests.support.waiting import wait_until
from webscraper_sim.scenarios import japan_post_number
from webscraper_sim.state import JAPAN_POST_SITEMAP

pytestmark = pytest.mark.integration
CREATIONS = 24


@pytest.fixture
def env(database_url, vhost, sim) -> dict[str, str]:
    return services_env(
        database_url,
        vhost.amqp_url,
        sim.api_url,
        JAPAN_POST_SITEMAP_ID=str(JAPAN_POST_SITEMAP),
        API_QUOTA_WINDOW_S="30",
        PUBLISH_MIN_INTERVAL_S="0.05",
        PUBLISH_MAX_URLS_PER_JOB="5",
        SELECTOR_MAX_RECORDS="5",
        SELECTOR_INTERVAL_S="60",
    )


def backlog(db, numbers: int, refreshes: int) -> None:
    account = rows.account(db)
    for _ in range(numbers):
        rows.purchase(db, account, tracking_number=None)
    for serial in range(refreshes):
        rows.purchase(
            db,
            account,
            tracking_number=japan_post_number(serial, 0),
            shipping_method="JP LOGISTICS GROUP CO., LTD.",
            latest_delivery_status="引受",
        )


def creations(sim) -> list[str]:
    """The custom ids of the scraping jobs created, in order."""
    return [job["custom_id"] for job in sim.state.snapshot()["jobs"]]


@contextlib.contextmanager
def running(db, env):
    """The publisher and the selector daemon's feed, in threads, until the block ends;
    yields the feed."""
    settings = load_settings(env)
    sessions = make_session_factory(db)
    stop = threading.Event()
    publisher = build_publisher(settings, stop)
    share = Share(sessions, QuotaPolicy.of(settings), settings.refresh_max_share)
    feed = Feed(settings, sessions, list(enabled_tasks(settings)), share)

    def select_until_stopped():
        while not stop.is_set():
            run_due(feed, settings)
            feed.wait(stop)

    threads = [
        threading.Thread(target=publisher.run, daemon=True),
        threading.Thread(target=select_until_stopped, daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        yield feed
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)


@pytest.mark.parametrize("most_urls", ["5", "1"])  # with 1, a pass of 5 pages is 5 packs
def test_under_a_backlog_of_both_the_tracking_number_task_gets_three_quarters_of_creations(
    db, env, sim, most_urls
):
    backlog(db, numbers=200, refreshes=400)  # more than 24 creations of either can take
    with running(db, {**env, "PUBLISH_MAX_URLS_PER_JOB": most_urls}):
        wait_until(lambda: len(creations(sim)) >= CREATIONS, 60)
    made = creations(sim)[:CREATIONS]
    numbers = sum(custom_id.startswith("owryt-") for custom_id in made)
    refreshes = sum(custom_id.startswith("jpt10-") for custom_id in made)
    assert numbers + refreshes == CREATIONS
    assert numbers >= 0.75 * CREATIONS, made
    assert refreshes >= 1, made  # the refresh is held to its share, not starved


def test_without_a_tracking_number_backlog_the_refresh_takes_every_slot(db, env, sim):
    backlog(db, numbers=0, refreshes=200)
    with running(db, env) as feed:
        wait_until(lambda: len(creations(sim)) >= 4, 30)
        assert feed.backlogged["official_website_redirect_to_yamato_tracking"] is False
    assert all(custom_id.startswith("jpt10-") for custom_id in creations(sim))


def test_the_share_counts_creations_over_the_window_the_ledger_enforces(db, env):
    """A creation 905 s ago still holds room in the ledger's 900 s window (its margin
    makes it 909 s): the share counts it too, and one planned ahead of now."""
    settings = load_settings({**env, "API_QUOTA_WINDOW_S": "900"})
    sessions = make_session_factory(db)
    with sessions() as session, session.begin():
        for custom_id, seconds in (("jpt10-old", -905), ("owryt-ahead", 30), ("owryt-gone", -920)):
            at = func.clock_timestamp() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)
            session.add(ApiCall(kind="create", custom_id=custom_id, at=at))
    share = Share(sessions, QuotaPolicy.of(settings), settings.refresh_max_share)
    assert share.creations(JAPAN_POST) == (1, 2)
