"""The reconciler on real PostgreSQL and RabbitMQ, the ingestor in a thread, against the
simulator with no webhook at all (no gateway): every in-flight job is moved on by
something, and a scraping job is never made twice."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests
from sqlalchemy import func, select, update

from selector.reconciling import UNTAKEN_RESENDS, Reconciler
from shared.db.models import PurchaseCheck, TrackingJob
from shared.db.session import make_session_factory
from shared.db.statuses import JobStatus
from shared.messaging.publishing import MessagePublisher, connect
from shared.messaging.topology import PUBLISHER_CANDIDATES
from shared.settings import load_settings
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK
from tests.conftest import SIM_TOKEN
from tests.integration.test_ingestor import running_ingestor
from tests.support.published import Published
from tests.support.rabbit import queue_counts, take_bodies
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
AFTER_S = 0.3


@pytest.fixture
def env(database_url, vhost, sim) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": vhost.amqp_url,
        "WEBSCRAPER_API_URL": sim.api_url,
        "WEBSCRAPER_API_TOKEN": SIM_TOKEN,
        "INGEST_RETRY_S": "0.2",
        "INGEST_MAX_RETRIES": "3",
        "RECHECK_BASE_S": "60",
        "RECHECK_MAX_S": "600",
        "HTTP_TIMEOUT_S": "2",
        "RECONCILE_AFTER_S": str(AFTER_S),
    }


@pytest.fixture
def ingestor(env):
    with running_ingestor(env):
        yield


@pytest.fixture
def published(db, sim):
    return Published(db, sim)


@pytest.fixture
def reconcile(env, db):
    """One reconciling pass now, as the selector daemon runs it after its pass."""
    sessions = make_session_factory(db)

    def run(**settings: str):
        with connect(env["AMQP_URL"]) as connection:
            publisher = MessagePublisher(connection)
            publisher.ensure_ready()
            return Reconciler(load_settings({**env, **settings}), sessions, publisher, TASK).run()

    return run


def sim_jobs(sim) -> list[dict]:
    return sim.state.snapshot()["jobs"]


def finished(sim) -> bool:
    return all(job["status"] == "finished" for job in sim_jobs(sim))


def test_a_scraping_job_whose_webhook_never_came_is_imported_and_never_made_again(
    published, ingestor, reconcile, sim
):
    ids = published.make(0, 3, 7, packed=True)  # one scraping job, no webhook ever
    assert wait_until(lambda: finished(sim), timeout=10)
    time.sleep(AFTER_S)
    looked = reconcile()
    assert (looked.hinted, looked.resent) == (1, 0)  # one hint for the pack's three
    assert wait_until(lambda: published.ended(*ids), timeout=15)
    assert published.purchase(ids[0]).tracking_number
    assert published.purchase(ids[1]).tracking_number
    assert published.job(ids[2]).error == "no data: empty page"
    assert len(sim_jobs(sim)) == 1  # never a second scraping job
    assert reconcile().hinted == 0  # nothing in flight is left to look at


def test_a_scraping_job_deleted_on_the_service_side_fails_and_its_purchase_waits(
    published, ingestor, reconcile, sim
):
    (pid,) = published.make(0)
    scraping_job_id = published.job(pid).scraping_job_id
    requests.delete(f"{sim.api_url}scraping-job/{scraping_job_id}", params={"api_token": SIM_TOKEN})
    time.sleep(AFTER_S)
    assert reconcile().hinted == 1
    assert wait_until(lambda: published.ended(pid), timeout=15)
    job = published.job(pid)
    assert (job.status, job.error) == (
        "failed",
        f"scraping job {scraping_job_id} not found in the API",
    )
    with published.sessions() as session:
        check = session.get(PurchaseCheck, pid)
        now = session.execute(select(func.now())).scalar_one()
    assert check is not None and check.next_check_at > now  # re-checked later, not now
    assert len(sim_jobs(sim)) == 0


def test_a_scraping_job_still_running_is_looked_at_again_later_with_back_off(
    published, ingestor, reconcile, sim
):
    sim.state.config.run_s = 3.0
    (pid,) = published.make(0)
    time.sleep(AFTER_S)
    assert reconcile().hinted == 1
    assert reconcile().hinted == 0  # its next look is RECONCILE_AFTER_S away
    # the ingestor confirmed it running and left it pending, costing one call
    assert wait_until(lambda: len(published.calls("get")) == 1, timeout=10)
    time.sleep(0.3)
    assert published.job(pid).status == JobStatus.PENDING
    assert wait_until(lambda: reconcile().hinted == 1, timeout=5, step=0.05)
    job = published.job(pid)
    assert job.reconcile_count == 2 and job.status == JobStatus.PENDING
    with published.sessions() as session:  # the second look pushed the third out 2x
        wait_s = session.execute(
            select(func.extract("epoch", TrackingJob.reconcile_at - func.now()))
        ).scalar_one()
    assert AFTER_S < float(wait_s) <= 2 * AFTER_S
    assert wait_until(lambda: len(published.calls("get")) == 2, timeout=10)
    assert wait_until(lambda: finished(sim), timeout=10)
    assert wait_until(lambda: reconcile().hinted == 1, timeout=5, step=0.05)
    assert wait_until(lambda: published.ended(pid), timeout=15)
    assert published.purchase(pid).tracking_number
    assert len(sim_jobs(sim)) == 1


def test_each_pass_looks_at_a_bounded_number_oldest_first(published, reconcile, sim, db):
    ids = published.make(0, 1, 2)
    with published.sessions() as session, session.begin():
        for age, pid in zip((30, 20, 10), ids, strict=True):
            session.execute(
                update(TrackingJob)
                .where(TrackingJob.purchasing_id == pid)
                .values(created_at=func.now() - dt.timedelta(seconds=age))
            )
    first = reconcile(SELECTOR_MAX_RECORDS="2")
    assert first.hinted == 2
    assert [published.job(pid).reconcile_count for pid in ids] == [1, 1, 0]
    assert reconcile(SELECTOR_MAX_RECORDS="2").hinted == 1
    assert published.job(ids[2]).reconcile_count == 1


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.PUBLISHING])
def test_a_job_without_a_scraping_job_gets_its_candidate_again(published, reconcile, vhost, status):
    """``queued``: its candidate.found was confirmed, then lost (dead-lettered, purged);
    ``publishing``: the publisher died with the pack in hand and its message is gone.
    The candidate goes to the publisher again, which settles it (it never creates twice:
    see test_publisher's lost-create tests)."""
    (pid,) = published.make(0)
    with published.sessions() as session, session.begin():
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.purchasing_id == pid)
            .values(scraping_job_id=None, status=status, published_at=func.now())
        )
    time.sleep(AFTER_S)
    looked = reconcile()
    assert (looked.hinted, looked.resent) == (0, 1)
    assert queue_counts(vhost.amqp_url, PUBLISHER_CANDIDATES)[0] == 1
    (body,) = take_bodies(vhost.amqp_url, PUBLISHER_CANDIDATES)
    assert body["custom_id"] == published.job(pid).custom_id


def test_a_queued_job_no_publisher_takes_ends_failed_after_its_re_sends(
    published, reconcile, vhost
):
    """Its task is off in the publisher, which refuses each re-send: after
    UNTAKEN_RESENDS of them it ends failed with the reason, and its purchase waits its
    re-check delay; a job a publisher has packed is re-sent however often it is looked at."""
    untaken, packed = published.make(0, 1)
    with published.sessions() as session, session.begin():
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.purchasing_id.in_([untaken, packed]))
            .values(scraping_job_id=None, status=JobStatus.QUEUED, published_at=func.now())
        )
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.purchasing_id == packed)
            .values(pack_of=TrackingJob.id)
        )
    resent = []
    for _ in range(UNTAKEN_RESENDS + 1):
        with published.sessions() as session, session.begin():  # due now
            session.execute(update(TrackingJob).values(reconcile_at=func.now()))
        resent.append(reconcile(RECONCILE_AFTER_S="60").resent)
    assert resent == [2] * UNTAKEN_RESENDS + [1]
    job = published.job(untaken)
    assert (job.status, job.error) == (
        "failed",
        f"no publisher took it after {UNTAKEN_RESENDS} re-sends: is {TASK.name} on in the "
        "publisher?",
    )
    assert published.job(packed).status == "queued"
    with published.sessions() as session:
        assert session.get(PurchaseCheck, untaken) is not None
    take_bodies(vhost.amqp_url, PUBLISHER_CANDIDATES)
