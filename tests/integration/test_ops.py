"""``trackfill status`` and ``trackfill dead-letters`` as an operator runs them, on the
test services: a dead letter is listed (and stays), replayed after the fix, processed
once; the status's JSON agrees with the database."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, insert, select, update

from ingestor.__main__ import build as build_ingestor
from shared.db.models import (
    ApiCall,
    ProcessedNotification,
    PurchaseCheck,
    SyncLog,
    TrackingBatch,
    TrackingJob,
)
from shared.db.rechecks import Recheck
from shared.domain.schedule import Schedule
from shared.messaging.publishing import MessagePublisher, connect
from shared.messaging.topology import INGESTOR_COMPLETIONS, JOB_COMPLETED
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK
from tests.support.ops import Service, notify, ops_env, trackfill
from tests.support.published import Published
from tests.support.rabbit import queue_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
DEAD = f"{INGESTOR_COMPLETIONS}.dead-letter"


@pytest.fixture
def env(database_url, vhost, sim) -> dict[str, str]:
    return ops_env(database_url, vhost.amqp_url, sim.api_url)


def Ingestor(env: dict[str, str]) -> Service:  # noqa: N802 (reads as the service it runs)
    return Service(build_ingestor, env)


def test_a_dead_letter_is_listed_replayed_after_the_fix_and_processed_once(env, db, sim):
    published = Published(db, sim)
    (pid,) = published.make(0)
    job = published.job(pid)
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", timeout=5)
    # the ingestor runs with a revoked token: the API refuses, the message is dead-lettered
    broken = Ingestor({**env, "WEBSCRAPER_API_TOKEN": "revoked-token"})
    message_id = notify(env, job.custom_id, job.scraping_job_id)
    assert wait_until(lambda: queue_counts(env["AMQP_URL"], DEAD)[0] == 1, timeout=10)
    broken.close()

    listed = json.loads(trackfill(env, "dead-letters", "list", "--json").stdout)["letters"]
    assert [(x["message_id"], x["origin"]) for x in listed] == [(message_id, INGESTOR_COMPLETIONS)]
    assert "the API refused a follow-up call" in listed[0]["reason"]
    assert "revoked-token" not in listed[0]["reason"]
    assert queue_counts(env["AMQP_URL"], DEAD)[0] == 1  # listing lost nothing
    table = trackfill(env, "dead-letters", "list").stdout
    assert message_id in table and "1 dead letters" in table

    fixed = Ingestor(env)
    try:
        out = trackfill(env, "dead-letters", "replay", message_id).stdout
        assert f"replayed {message_id}" in out and "1 replayed" in out
        assert wait_until(lambda: published.job(pid).status == "completed", timeout=10)
        assert queue_counts(env["AMQP_URL"], DEAD)[0] == 0
        assert "0 replayed" in trackfill(env, "dead-letters", "replay", "--all").stdout
        # a second copy of the same notification changes nothing
        notify(env, job.custom_id, job.scraping_job_id)
        assert wait_until(lambda: queue_counts(env["AMQP_URL"], INGESTOR_COMPLETIONS)[0] == 0)
    finally:
        fixed.close()
    assert published.count(ProcessedNotification) == 1
    assert published.purchase(pid).tracking_number is not None


def test_replay_leaves_the_letters_not_named(env, db, vhost):
    with connect(env["AMQP_URL"]) as connection:
        publisher = MessagePublisher(connection)
        publisher.publish_raw(JOB_COMPLETED, TASK.name, b"first garbage", message_id="one")
        publisher.publish_raw(JOB_COMPLETED, TASK.name, b"second garbage", message_id="two")
    ingestor = Ingestor(env)
    try:
        assert wait_until(lambda: queue_counts(env["AMQP_URL"], DEAD)[0] == 2, timeout=10)
    finally:
        ingestor.close()
    assert "1 replayed" in trackfill(env, "dead-letters", "replay", "two").stdout
    listed = json.loads(trackfill(env, "dead-letters", "list", "--json").stdout)["letters"]
    assert [x["message_id"] for x in listed] == ["one"]
    assert "body is not JSON" in listed[0]["reason"]
    assert queue_counts(env["AMQP_URL"], INGESTOR_COMPLETIONS)[0] == 1  # "two", back again


def test_status_json_agrees_with_the_database(env, db, sim):
    published = Published(db, sim)
    ids = published.make(0, 1, 4)
    assert wait_until(lambda: all(j["status"] == "finished" for j in sim.state.snapshot()["jobs"]))
    ingestor = Ingestor(env)
    try:
        notify(env, published.job(ids[0]).custom_id, published.job(ids[0]).scraping_job_id)
        assert wait_until(lambda: published.job(ids[0]).status == "completed", timeout=10)
    finally:
        ingestor.close()
    data = json.loads(trackfill(env, "status", "--json").stdout)
    with published.sessions() as session:
        batch = session.execute(select(TrackingBatch)).scalar_one()
        pending = session.execute(
            select(func.count()).where(TrackingJob.status == "pending")
        ).scalar_one()
        calls = session.execute(select(func.count()).select_from(ApiCall)).scalar_one()
    (shown,) = data["batches"]
    assert shown["batch_uuid"] == str(batch.batch_uuid)
    assert (shown["status"], shown["total_jobs"], shown["completed_jobs"]) == (
        batch.status,
        3,
        1,
    )
    assert data["jobs_in_flight"]["pending"]["count"] == pending == 2
    # the ingestor's status check and download, and the 3 creates this test made itself,
    # which the ledger learnt from the API's X-RateLimit-Remaining
    assert data["quota"]["used"] == calls == 5
    assert data["quota"]["by_kind"] == {"get": 1, "json": 1, "external": 3}
    assert data["quota"]["left"] == data["quota"]["calls"] - 5
    assert data["queues"][INGESTOR_COMPLETIONS] == {
        "messages": 0,
        "consumers": 0,
        "declared": True,
        "unconsumed": True,
    }
    assert data["broker_error"] is None
    shown = json.loads(trackfill(env, "status", "--batch", str(batch.batch_uuid), "--json").stdout)
    assert shown["batch_uuid"] == str(batch.batch_uuid)
    assert [j["status"] for j in shown["jobs"]] == ["completed", "pending", "pending"]
    assert "recent batches" in trackfill(env, "status").stdout
    assert data["expired"] == 0
    tasks = {row["task"]: row for row in data["tasks"]}
    assert tasks["official_website_redirect_to_yamato_tracking"]["in_flight"] == 2
    assert tasks["official_website_redirect_to_yamato_tracking"]["sitemap_id"] == 1421177
    refresh = tasks["japan_post_tracking_10_tracking_number"]
    assert (refresh["enabled"], refresh["in_flight"], refresh["last_pass"]) == (False, 0, None)


def test_status_shows_each_tasks_creations_in_the_window_and_last_pass(env, db, sim):
    with db.begin() as connection:
        now = connection.execute(select(func.now())).scalar_one()
        connection.execute(
            insert(ApiCall),
            [
                {"kind": "create", "at": now, "used_at": now, "custom_id": custom_id}
                for custom_id in (
                    "owryt-0123abcd-0000",
                    "owryt-0123abcd-0001",
                    "jpt10-4567abcd-0000",
                )
            ],
        )
        connection.execute(
            insert(SyncLog).values(
                operation_type="japan_post_tracking_10_triggered", success=True, message="x"
            )
        )
    on = {**env, "JAPAN_POST_SITEMAP_ID": "1424310"}
    data = json.loads(trackfill(on, "status", "--json").stdout)
    tasks = {row["task"]: row for row in data["tasks"]}
    assert tasks["official_website_redirect_to_yamato_tracking"]["creations_in_window"] == 2
    refresh = tasks["japan_post_tracking_10_tracking_number"]
    assert (refresh["enabled"], refresh["sitemap_id"], refresh["creations_in_window"]) == (
        True,
        1424310,
        1,
    )
    assert refresh["last_pass"] is not None
    shown = trackfill(on, "status").stdout
    assert "japan_post_tracking_10_tracking_number" in shown and "1424310" in shown


def test_status_counts_the_purchases_given_up(env, db, sim):
    published = Published(db, sim)
    pid, other = published.make(4, 5)
    with published.sessions() as session, session.begin():
        for purchasing_id in (pid, other):
            Recheck(Schedule(min_s=0, base_s=60, max_s=60)).record(
                session, purchasing_id, "not shipped yet"
            )
        session.execute(
            update(PurchaseCheck)
            .where(PurchaseCheck.purchasing_id == pid)
            .values(first_attempt_at=func.now() - dt.timedelta(days=31))
        )
    assert json.loads(trackfill(env, "status", "--json").stdout)["expired"] == 1
    assert "no tracking number): 1" in trackfill(env, "status").stdout


def test_status_counts_the_queued_jobs_no_publisher_takes(env, db, sim):
    """Re-sent by the reconciler and still in no pack (their task off in the publisher,
    say); one the publisher packed, and one not yet re-sent, are not counted."""
    published = Published(db, sim)
    untaken, packed, fresh = published.make(0, 1, 2)
    with published.sessions() as session, session.begin():
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.purchasing_id.in_([untaken, packed, fresh]))
            .values(scraping_job_id=None, status="queued", reconcile_count=1)
        )
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.purchasing_id == packed)
            .values(pack_of=TrackingJob.id)
        )
        session.execute(
            update(TrackingJob).where(TrackingJob.purchasing_id == fresh).values(reconcile_count=0)
        )
    data = json.loads(trackfill(env, "status", "--json").stdout)
    tasks = {row["task"]: row for row in data["tasks"]}
    assert tasks["official_website_redirect_to_yamato_tracking"]["untaken"] == 1
    assert tasks["japan_post_tracking_10_tracking_number"]["untaken"] == 0
    assert "no publisher takes them" in trackfill(env, "status").stdout
