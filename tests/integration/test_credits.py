"""Page credits (docs/credits.md) on the real services and the simulator, which bills
them as the service does: what trackfill records equals what the simulator billed, the
account is read at most every PAGE_CREDITS_READ_S, and at the reserve a pass selects
nothing while a manual request is still scraped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from selector.__main__ import credit_reader
from selector.service import Selector
from shared.db.batches import NewJob, create_batch
from shared.db.credits import latest_reading
from shared.db.models import PageCreditReading, ScrapingJobCost, SyncLog, TrackingJob
from shared.db.session import make_session_factory
from shared.messaging.publishing import MessagePublisher, connect
from shared.quota import QuotaLedger, QuotaPolicy
from shared.settings import load_settings
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO
from shared.webscraper.credits import CreditReader
from tests.integration.test_publisher import Running, jobs
from tests.support import rows
from tests.support.ops import ops_env, run, trackfill
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
TASK = "official_website_redirect_to_yamato_tracking"


@pytest.fixture
def env(database_url, vhost, sim) -> dict[str, str]:
    return {
        **ops_env(database_url, vhost.amqp_url, sim.api_url),
        "PUBLISH_MIN_INTERVAL_S": "0.05",
        "API_FOLLOWUP_CALLS_PER_JOB": "0",
        "SELECTOR_MAX_RECORDS": "60",
        "PUBLISH_MAX_URLS_PER_JOB": "8",
        "PUBLISH_RETRY_BASE_S": "0.1",
    }


@pytest.fixture
def publishers(env):
    running = Running(env)
    yield running
    running.stop_all()


def select_pass(env, db) -> None:
    settings = load_settings(env)
    with connect(settings.amqp_url) as connection:
        Selector(settings, make_session_factory(db), MessagePublisher(connection)).run_pass()


def costs(db) -> dict[int, int]:
    with make_session_factory(db)() as session:
        found = session.execute(select(ScrapingJobCost.scraping_job_id, ScrapingJobCost.pages))
        return dict(found.all())


def billed_when_ended(sim, count: int) -> dict[int, int]:
    """Each scraping job's credits as the simulator billed them, once ``count`` ended."""
    ended = lambda: [j for j in sim.state.snapshot()["jobs"] if j["status"] == "finished"]  # noqa: E731
    assert wait_until(lambda: len(ended()) == count, timeout=15)
    return {job["id"]: job["billed"] for job in ended()}


def selection_cli(env, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "run_tracking_number_empty"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def reader(env, db, read_every_s: float) -> CreditReader:
    """The selector daemon's reader, as its composition root builds it."""
    settings = load_settings({**env, "PAGE_CREDITS_READ_S": str(read_every_s)})
    sessions = make_session_factory(db)
    reader = credit_reader(settings, sessions, QuotaLedger(sessions, QuotaPolicy.of(settings)))
    assert reader is not None
    return reader


def account_calls(sim) -> int:
    return sum(call["kind"] == "account" for call in sim.state.snapshot()["calls"])


def test_the_credits_recorded_per_scraping_job_are_the_ones_the_simulator_billed(
    publishers, env, db, sim
):
    account = rows.account(db)
    shared_order = rows.order_number(0)
    for order in [rows.order_number(d % 10) for d in range(18)] + [shared_order]:
        rows.purchase(db, account, order)
    rows.purchase(db, account, shared_order)  # two purchases, one page: one credit
    select_pass(env, db)
    publishers.start()
    assert wait_until(lambda: all(j.scraping_job_id for j in jobs(db)) and len(jobs(db)) == 20)
    billed = billed_when_ended(sim, 3)  # 19 start URLs in packs of at most 8
    assert costs(db) == billed
    assert sum(billed.values()) == 19
    assert sim.state.snapshot()["page_credits"] == sim.state.config.page_credits - 19


def test_a_lost_create_settled_by_the_search_records_its_cost_once(publishers, env, db, sim):
    account = rows.account(db)
    for _ in range(5):
        rows.purchase(db, account, rows.order_number(0))
    select_pass(env, db)
    sim.state.faults.update({"lose_create_answer": 1})
    publishers.start()
    assert wait_until(lambda: all(j.scraping_job_id for j in jobs(db)), timeout=20)
    assert costs(db) == billed_when_ended(sim, 1) == {jobs(db)[0].scraping_job_id: 5}


def test_the_account_is_read_at_most_every_read_s_and_a_failed_read_keeps_the_last(env, db, sim):
    slow = reader(env, db, read_every_s=3600)
    first = slow.current()
    assert first is not None and first.page_credits == sim.state.config.page_credits
    assert slow.current() == first and reader(env, db, 3600).current() == first
    assert account_calls(sim) == 1  # two more asks, by two readers: no call

    sim.state.faults.update({"error_burst": 10, "error_kinds": ["account"]})
    eager = reader(env, db, read_every_s=0.001)
    assert eager.current() == first  # the API failed: the last reading stands
    sim.state.faults.update({"error_burst": 0})
    sim.state.page_credits = 1234
    assert eager.current().page_credits == 1234
    with make_session_factory(db)() as session:
        assert latest_reading(session).page_credits == 1234
        assert len(session.execute(select(PageCreditReading)).all()) == 2


def test_at_the_reserve_a_pass_selects_nothing_and_says_why_but_a_manual_request_is_scraped(
    publishers, env, db, sim, vhost
):
    account = rows.account(db)
    waiting = [rows.purchase(db, account, rows.order_number(0)) for _ in range(3)]
    sim.state.page_credits = 40
    env = {**env, "PAGE_CREDITS_RESERVE": "50"}
    reader(env, db, 900).current()

    select_pass(env, db)
    assert jobs(db) == []
    with make_session_factory(db)() as session:
        (log,) = session.execute(select(SyncLog)).scalars().all()
    assert "page credits at the reserve: 40 left (PAGE_CREDITS_RESERVE 50)" in log.message
    assert log.details["held"] and log.details["found"] == 0
    dry = selection_cli(env, "--dry-run")
    assert "a pass would select nothing: page credits at the reserve" in dry.stdout

    publishers.start()
    vhost.management.publish(
        vhost.name, "candidate.found", "manual", json.dumps({"purchasing_id": waiting[0]})
    )
    assert wait_until(lambda: [j.scraping_job_id is not None for j in jobs(db)] == [True])
    assert jobs(db)[0].purchasing_id == waiting[0]


def test_status_shows_the_credits_left_spent_per_task_and_per_filled_purchase(env, db, sim):
    account = rows.account(db)
    filled = rows.purchase(db, account, rows.order_number(0), tracking_number="123456789012")
    select_env = {**env, "SELECTOR_MAX_RECORDS": "5"}
    with make_session_factory(db)() as session, session.begin():
        session.add(PageCreditReading(page_credits=1000))
        session.add(ScrapingJobCost(scraping_job_id=7, task_name=TASK, pages=10))
        session.add(ScrapingJobCost(scraping_job_id=8, task_name=TASK, pages=4))
    _a_completed_job(db, filled)

    data = json.loads(trackfill(select_env, "status", "--json").stdout)["credits"]
    assert (data["left"], data["reserve"], data["at_reserve"]) == (1000, 0, False)
    assert data["today"] == data["last_30_days"] == {TASK: 14}
    assert (data["filled_30_days"], data["per_filled"]) == (1, 14.0)
    assert data["per_day"] == 2.0 and data["days_left"] == 500.0 and data["run_out_on"]
    shown = run(select_env, "status").stdout
    assert "page credits left: 1000" in shown
    assert f"spent in 30 days: 14 ({TASK} 14)" in shown
    assert "per filled purchase (30 days): 14 (1 filled)" in shown


def test_the_dry_run_shows_what_the_pass_would_cost_in_credits(env, db):
    account = rows.account(db)
    order = rows.order_number(0)
    for pid_order in (order, order, rows.order_number(0)):
        rows.purchase(db, account, pid_order)
    dry = selection_cli(env, "--dry-run").stdout
    assert "3 would be dispatched, costing 2 page credits" in dry


def _a_completed_job(db, purchasing_id: int) -> None:
    """A tracking job of the tracking-number task that ended with ``purchasing_id``'s
    number, just now."""
    with make_session_factory(db)() as session, session.begin():
        (job,) = create_batch(
            session, OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO, [NewJob(purchasing_id, "W1", "https://x")]
        )
        session.execute(
            TrackingJob.__table__.update()
            .where(TrackingJob.id == job.id)
            .values(status="completed", completed_at=func.now())
        )
