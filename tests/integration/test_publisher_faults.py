# ruff: noqa: F811 - the fixtures imported from test_publisher are used by name
"""The publisher under faults: a create of unknown effect is settled, however long the
API is out and whichever attempt it was, and a pack holds one creation slot at a time.
Real PostgreSQL, RabbitMQ and the simulator, as in test_publisher.py, whose fixtures
these tests share (20 calls per 3 s window, HTTP_TIMEOUT_S=2, PUBLISH_MAX_ATTEMPTS=3)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from publisher.__main__ import candidate_handler
from shared.contracts import CandidateFound, JobCompleted
from shared.db.batches import NewJob, create_batch
from shared.db.models import ApiCall, PurchaseCheck, Purchasing, TrackingJob
from shared.db.session import make_session_factory
from shared.domain.urls import order_status_url
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import MessagePublisher, connect
from shared.messaging.topology import (
    CANDIDATE_FOUND,
    JOB_COMPLETED,
    PUBLISHER_WAIT,
    declare_topology,
)
from shared.quota import QuotaLedger, QuotaPolicy
from shared.settings import load_settings
from shared.tasks import JAPAN_POST_TRACKING_10 as JAPAN_POST
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK
from tests.integration.test_ingestor import running_ingestor
from tests.integration.test_publisher import (  # noqa: F401
    a_delivery,
    all_published,
    assert_one_job_per_candidate,
    creates,
    env,
    jobs,
    publishers,
    select_candidates,
)
from tests.support import rows
from tests.support.waiting import wait_until
from webscraper_sim.state import JAPAN_POST_SITEMAP

pytestmark = pytest.mark.integration


def unused_creation_slots(db) -> list[str]:
    """The creation slots planned and never used, by custom_id."""
    with make_session_factory(db)() as session:
        return list(
            session.execute(
                select(ApiCall.custom_id).where(ApiCall.kind == "create", ApiCall.used_at.is_(None))
            ).scalars()
        )


def test_a_create_served_after_its_timeout_is_found_not_made_again(
    publishers, select_candidates, sim, db
):
    """The client gives up after 2 s; the service makes the job at 3 s. The search
    waits twice the timeout, finds it, and the pack keeps no creation slot behind."""
    select_candidates(1)
    sim.state.faults.update({"slow": 1, "slow_s": 3.0})
    started = time.monotonic()
    publishers.start()
    # and the slow create has been answered (recorded): a second one would be seen
    assert wait_until(lambda: all_published(db, 1) and time.monotonic() - started > 3.5, 20)
    assert len(creates(sim)) == 1
    (job,) = jobs(db)
    assert job.publish_attempts == 1
    assert_one_job_per_candidate(sim, db)
    assert unused_creation_slots(db) == []


def test_an_api_outage_during_the_search_is_waited_out_and_not_counted_as_attempts(
    publishers, select_candidates, sim, db
):
    select_candidates(1)
    sim.state.faults.update({"lose_create_answer": 1})
    publishers.start()
    assert wait_until(lambda: len(creates(sim)) == 1, timeout=10)
    sim.state.faults.update({"error_burst": 6, "error_status": 503})  # six searches fail
    assert wait_until(lambda: all_published(db, 1), timeout=30)
    calls = sim.state.snapshot()["calls"]
    assert [c["status"] for c in calls if c["kind"] == "list"] == [503] * 6 + [200]
    (job,) = jobs(db)
    assert job.publish_attempts == 1 and job.status == "pending"
    assert_one_job_per_candidate(sim, db)
    assert unused_creation_slots(db) == []


def test_the_last_attempts_lost_create_is_searched_for_and_adopted(
    publishers, select_candidates, sim, db, env
):
    publishers.settings = load_settings({**env, "PUBLISH_MAX_ATTEMPTS": "1"})
    select_candidates(1)
    sim.state.faults.update({"lose_create_answer": 1})
    publishers.start()
    assert wait_until(lambda: all_published(db, 1), timeout=20)
    kinds = [c["kind"] for c in sim.state.snapshot()["calls"]]
    assert kinds == ["create", "list"]
    assert_one_job_per_candidate(sim, db)


def test_the_last_attempt_fails_the_pack_once_its_search_says_not_created(
    publishers, select_candidates, sim, db, env
):
    publishers.settings = load_settings({**env, "PUBLISH_MAX_ATTEMPTS": "1"})
    select_candidates(1)
    sim.state.faults.update({"error_burst": 1, "error_status": 502})  # the create only
    publishers.start()
    assert wait_until(lambda: jobs(db)[0].status == "failed", timeout=20)
    (job,) = jobs(db)
    assert job.error.startswith("create failed after 1 attempts: ") and "502" in job.error
    kinds = [c["kind"] for c in sim.state.snapshot()["calls"]]
    assert kinds == ["create", "list"]  # settled before failing: not created
    assert sim.state.snapshot()["jobs"] == []
    assert unused_creation_slots(db) == []


def test_a_manual_request_for_a_purchase_whose_refresh_is_in_flight_is_refused(
    publishers, sim, db, vhost
):
    """The refresh job keeps its task, its URL and its pack; the request is kept in the
    dead-letter queue with the reason."""
    pid = rows.purchase(db, rows.account(db))
    url = "https://trackings.post.japanpost.jp/services/srv/search/direct?reqCodeNo1=1"
    with make_session_factory(db)() as session, session.begin():
        (refresh,) = create_batch(session, JAPAN_POST, [NewJob(pid, "W0000000001", url)])
    publishers.start()
    vhost.management.publish(vhost.name, "candidate.found", "manual", f'{{"purchasing_id": {pid}}}')
    dead = vhost.management.wait_for_messages(vhost.name, "publisher.candidates.dead-letter", 1)
    reason = dead[0]["properties"]["headers"]["x-trackfill-reason"]
    assert reason.startswith(f"{refresh.custom_id} is a job of {JAPAN_POST.name} in flight")
    (job,) = jobs(db)
    assert (job.custom_id, job.status, job.target_url) == (refresh.custom_id, "queued", url)
    assert sim.state.snapshot()["calls"] == []


def send_candidates(env, candidates: list[TrackingJob], task=TASK) -> None:
    """What the selector publishes for ``candidates`` (one group at the publisher)."""
    with connect(env["AMQP_URL"]) as connection:
        publisher = MessagePublisher(connection)
        for job in candidates:
            event = CandidateFound(task=task.name, purchasing_id=job.purchasing_id,
                                   custom_id=job.custom_id)  # fmt: skip
            publisher.publish(
                CANDIDATE_FOUND, task.name, new_envelope(CANDIDATE_FOUND, event.to_payload())
            )


def test_a_refresh_pack_the_publisher_fails_keeps_its_purchase_on_the_refresh_interval(
    publishers, sim, db, env, monkeypatch
):
    """As when the ingestor fails one: a refresh seeks no number, so its purchase is
    given no re-check delay (its refresh interval says when it is looked at again)."""
    monkeypatch.setattr(sim.state.config, "sitemaps", {1: "another"})  # 422 for ours
    pid = rows.purchase(db, rows.account(db))
    url = "https://trackings.post.japanpost.jp/services/srv/search/direct?reqCodeNo1=1"
    with make_session_factory(db)() as session, session.begin():
        (refresh,) = create_batch(session, JAPAN_POST, [NewJob(pid, "W0000000001", url)])
    publishers.settings = load_settings({**env, "JAPAN_POST_SITEMAP_ID": str(JAPAN_POST_SITEMAP)})
    publishers.start()
    send_candidates(env, [refresh], JAPAN_POST)
    assert wait_until(lambda: jobs(db)[0].status == "failed", timeout=20)
    assert jobs(db)[0].error.startswith("create refused")
    with make_session_factory(db)() as session:
        assert session.get(PurchaseCheck, pid) is None


@pytest.mark.parametrize("second_part_comes", ["after-the-create", "during-the-create"])
def test_a_url_split_across_two_groups_joins_the_scraping_job_of_its_first_part(
    publishers, sim, db, env, second_part_comes
):
    """Ten purchases of one order share its page; four reach the publisher first and
    are created at once, the six others come apart and join that job: one page, once."""
    account = rows.account(db)
    order = rows.order_number()
    for _ in range(10):
        rows.purchase(db, account, order)
    url = order_status_url(order, "user@example.com")
    with make_session_factory(db)() as session, session.begin():
        create_batch(session, TASK, [NewJob(pid, order, url) for pid in purchase_ids(db)])
    first, rest = jobs(db)[:4], jobs(db)[4:]
    publishers.settings = load_settings({**env, "PUBLISH_MAX_URLS_PER_JOB": "20"})
    publishers.start()
    if second_part_comes == "during-the-create":
        sim.state.faults.update({"slow": 1, "slow_s": 1.0})
    send_candidates(env, first)
    assert wait_until(lambda: len(sim.state.snapshot()["calls"]) == 1 or sim_busy(sim), 10)
    if second_part_comes == "after-the-create":
        assert wait_until(lambda: all(j.scraping_job_id for j in jobs(db)[:4]), timeout=10)
    send_candidates(env, rest)
    assert wait_until(lambda: all_published(db, 10), timeout=20)
    made = sim.state.snapshot()["jobs"]
    assert [job["start_urls"] for job in made] == [[url]]
    assert {job.scraping_job_id for job in jobs(db)} == {made[0]["id"]}
    assert {job.status for job in jobs(db)} == {"pending"}
    assert len(creates(sim)) == 1


def purchase_ids(db) -> list[int]:
    with make_session_factory(db)() as session:
        return list(session.execute(select(Purchasing.id).order_by(Purchasing.id)).scalars())


def sim_busy(sim) -> bool:
    """A create is being served (the slow fault has fired)."""
    return sim.state.faults.slow == 0


def test_a_webhook_for_a_lost_create_names_the_job_and_spares_the_search(
    publishers, select_candidates, sim, db, env
):
    """The create's answer is lost; before the publisher searches (twice the timeout,
    4 s), the job's webhook reaches the ingestor, which keeps its id in the ledger for
    that create: the publisher adopts it with no list call."""
    select_candidates(1)
    sim.state.faults.update({"lose_create_answer": 1})
    publishers.start()
    assert wait_until(lambda: len(creates(sim)) == 1, timeout=10)
    (made,) = sim.state.snapshot()["jobs"]
    with running_ingestor({**env, "INGEST_RETRY_S": "0.2"}):
        completed = JobCompleted(
            task=TASK.name, scraping_job_id=made["id"], status="finished",
            custom_id=made["custom_id"],
        )  # fmt: skip
        with connect(env["AMQP_URL"]) as connection:
            MessagePublisher(connection).publish(
                JOB_COMPLETED, TASK.name, new_envelope(JOB_COMPLETED, completed.to_payload())
            )
        assert wait_until(lambda: all_published(db, 1), timeout=15)
    kinds = [c["kind"] for c in sim.state.snapshot()["calls"]]
    assert "list" not in kinds and kinds.count("create") == 1
    (job,) = jobs(db)
    assert job.scraping_job_id == made["id"]


def parked_until(channel, since: float) -> list[float]:
    """When each message in the publisher's wait queue expires (monotonic seconds), in
    queue order; taken out of it. ``since``: no later than the moment they were parked."""
    ends = []
    while (got := channel.basic_get(PUBLISHER_WAIT, no_ack=True)) is not None:
        ends.append(since + int(got.properties["expiration"]) / 1000)
    return ends


def test_expirations_in_the_wait_queue_never_decrease(env, db):
    """RabbitMQ expires from the head only, so a message parked for an earlier moment
    than one ahead of it comes back late. Pack A is planned first and pack B after it;
    then the second purchase of A's order (its page already in A) parks for A's job: no
    earlier than B, which is in the queue ahead of it."""
    account = rows.account(db)
    first_order, other_order = rows.order_number(), rows.order_number()
    for order in (first_order, other_order, first_order):
        rows.purchase(db, account, order)
    urls = {
        order: order_status_url(order, "user@example.com") for order in (first_order, other_order)
    }
    with make_session_factory(db)() as session, session.begin():
        orders = [first_order, other_order, first_order]
        new = [NewJob(pid, o, urls[o]) for pid, o in zip(purchase_ids(db), orders, strict=True)]
        create_batch(session, TASK, new)
    settings = load_settings({**env, "PUBLISH_MIN_INTERVAL_S": "1.0"})
    handler = candidate_handler(settings)
    ledger = QuotaLedger(make_session_factory(db), QuotaPolicy.of(settings))
    for _ in range(20):  # the window is full: the next creations are ~3 s ahead
        ledger.plan("get")
    ends: list[float] = []
    with connect(env["AMQP_URL"]) as connection, connection.channel() as channel:
        declare_topology(connection)
        for job in jobs(db):  # A's first purchase, B, then A's second purchase
            since = time.monotonic()
            assert handler([a_delivery(env, job, connection)]) == [None]
            ends += parked_until(channel, since)
    assert len(ends) == 3 and ends[1] >= ends[0] - 0.05
    assert ends[2] >= ends[1] - 0.05, f"parked for {ends[2] - ends[1]:.2f} s before the one ahead"
