"""The operator's commands as a new operator meets them, on the test services (real
PostgreSQL, RabbitMQ vhost, simulator; the command run as a process): every exit status
with its one line and no traceback, ``job`` and ``enqueue`` checked against the rows,
``status`` with RabbitMQ refusing, queues without their consumer flagged."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest
from kombu import Queue
from sqlalchemy import func, insert, update

from ingestor.__main__ import build as build_ingestor
from publisher.__main__ import build as build_publisher
from shared.db.models import ApiCall, PurchaseCheck, Purchasing, TrackingJob
from shared.db.rechecks import Recheck
from shared.domain.schedule import Schedule
from shared.messaging.publishing import MessagePublisher, connect
from shared.messaging.topology import (
    CANDIDATE_FOUND,
    INGESTOR_COMPLETIONS,
    JOB_COMPLETED,
    PUBLISHER_CANDIDATES,
    PUBLISHER_DUE,
    all_queues,
    declare_topology,
    exchange,
)
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK
from tests.support import rows
from tests.support.ops import Service, notify, ops_env, run, trackfill
from tests.support.published import Published
from tests.support.rabbit import queue_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
DEAD = f"{INGESTOR_COMPLETIONS}.dead-letter"
EMAIL = "buyer+1@example.com"


@pytest.fixture
def env(database_url, vhost, sim) -> dict[str, str]:
    return ops_env(database_url, vhost.amqp_url, sim.api_url)


def refusing(env: dict[str, str]) -> dict[str, str]:
    """The same settings with a wrong RabbitMQ password."""
    return {**env, "AMQP_URL": env["AMQP_URL"].replace("guest:guest@", "guest:wrong@")}


def failed(done: subprocess.CompletedProcess, status: int, *words: str) -> str:
    """The command exited ``status`` with one line on stderr holding ``words``, and no
    traceback anywhere; that line."""
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def usage_error(done: subprocess.CompletedProcess, *words: str) -> None:
    """argparse's answer to a bad argument: the usage, then one line; exit 2."""
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert all(word in last for word in words), last


TAP = "test.candidates-tap"


@pytest.fixture
def tap(vhost) -> str:
    """A copy of every candidate.found (publisher.candidates, single active consumer,
    cannot be peeked at)."""
    with connect(vhost.amqp_url) as connection:
        declare_topology(connection)
        Queue(TAP, exchange(CANDIDATE_FOUND), routing_key="#")(connection.default_channel).declare()
    return TAP


def candidates_queued(vhost) -> list[dict]:
    return [json.loads(m["payload"]) for m in vhost.messages(TAP)]


# --- status ---------------------------------------------------------------------------


def test_a_batch_is_found_by_the_8_hex_prefix_the_status_table_shows(env, db, sim):
    published = Published(db, sim)
    ids = published.make(0, 1)
    batch = published.batch()
    prefix = str(batch.batch_uuid)[:8]
    assert prefix in trackfill(env, "status").stdout
    for given in (prefix, prefix.upper(), str(batch.batch_uuid)):
        shown = json.loads(trackfill(env, "status", "--batch", given, "--json").stdout)
        assert shown["batch_uuid"] == str(batch.batch_uuid)
        jobs = [published.job(pid) for pid in ids]
        assert [(j["custom_id"], j["job_id"], j["status"]) for j in shown["jobs"]] == [
            (j.custom_id, j.scraping_job_id, j.status) for j in jobs
        ]
    table = trackfill(env, "status", "--batch", prefix).stdout
    assert all(published.job(pid).custom_id in table for pid in ids)


def test_an_unknown_batch_is_one_line_and_exit_1(env, db):
    failed(run(env, "status", "--batch", "deadbeef"), 1, "no batch deadbeef")
    full = "00000000-0000-4000-8000-000000000000"
    failed(run(env, "status", "--batch", full, "--json"), 1, f"no batch {full}")


def test_a_batch_that_is_not_a_uuid_or_its_prefix_is_a_usage_error(env, db):
    usage_error(run(env, "status", "--batch", "1234"), "not a batch UUID or its 8-hex prefix")
    usage_error(run(env, "status", "--batch", "zzzzzzzz"), "not a batch UUID")


COMMANDS = [
    ("status",),
    ("status", "--json"),
    ("job", "--purchasing-id", "1"),
    ("enqueue", "--purchasing-id", "1"),
    ("dead-letters", "list"),
    ("dead-letters", "replay", "--all"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(env, command):
    done = run({**env, "API_QUOTA_CALLS": "lots"}, *command)
    failed(done, 2, "API_QUOTA_CALLS", "'lots'")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] != "dead-letters"], ids=" ".join)
def test_an_unreachable_database_is_one_line_and_exit_2(env, command):
    down = {**env, "DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/trackfill"}
    failed(run(down, *command), 2, "cannot use the database", "127.0.0.1")


@pytest.mark.parametrize(
    "command", [("enqueue", "--purchasing-id", "ID"), *COMMANDS[4:]], ids=" ".join
)
def test_a_broker_refusing_the_login_is_one_line_and_exit_2(env, db, vhost, command):
    pid = rows.purchase(db, rows.account(db, EMAIL))
    command = [str(pid) if part == "ID" else part for part in command]
    failed(run(refusing(env), *command), 2, "cannot use RabbitMQ", "ACCESS_REFUSED")
    assert "wrong" not in run(refusing(env), *command).stderr
    assert all(q["messages"] == 0 for q in vhost.management.queues(vhost.name))


def test_with_rabbitmq_refusing_status_still_shows_the_database_view(env, db, sim):
    published = Published(db, sim)
    published.make(0, 1, 2)
    batch = published.batch()
    done = run(refusing(env), "status")
    failed(done, 2, "cannot use RabbitMQ", "ACCESS_REFUSED")
    assert str(batch.batch_uuid)[:8] in done.stdout and "quota: 0/200" in done.stdout
    assert "jobs in flight: pending 3" in done.stdout
    as_json = run(refusing(env), "status", "--json")
    failed(as_json, 2, "cannot use RabbitMQ")
    data = json.loads(as_json.stdout)
    assert data["queues"] is None and "ACCESS_REFUSED" in data["broker_error"]
    assert [b["batch_uuid"] for b in data["batches"]] == [str(batch.batch_uuid)]
    assert data["jobs_in_flight"]["pending"]["count"] == 3


def test_a_consumer_queue_without_its_consumer_is_flagged(env, db, vhost):
    before = json.loads(trackfill(env, "status", "--json").stdout)["queues"]
    assert set(before) == {q.name for q in all_queues()}
    assert not any(q["declared"] for q in before.values())  # no service has started
    consumed = {PUBLISHER_CANDIDATES, PUBLISHER_DUE, INGESTOR_COMPLETIONS}
    assert {name for name, q in before.items() if q["unconsumed"]} == consumed
    ingestor = Service(build_ingestor, env)
    try:
        after = json.loads(trackfill(env, "status", "--json").stdout)["queues"]
        table = trackfill(env, "status").stdout
    finally:
        ingestor.close()
    assert after[INGESTOR_COMPLETIONS] == {
        "messages": 0,
        "consumers": 1,
        "declared": True,
        "unconsumed": False,
    }
    assert {name for name, q in after.items() if q["unconsumed"]} == consumed - {
        INGESTOR_COMPLETIONS
    }
    flagged = [line for line in table.splitlines() if "NO CONSUMER" in line]
    assert len(flagged) == 2 and any(PUBLISHER_CANDIDATES in line for line in flagged)


def test_a_job_in_flight_past_reconcile_after_s_is_flagged(env, db, sim):
    published = Published(db, sim)
    old, _ = published.make(0, 1)
    with published.sessions() as session, session.begin():
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.purchasing_id == old)
            .values(created_at=func.now() - dt.timedelta(minutes=10))
        )
    late = {**env, "RECONCILE_AFTER_S": "300"}
    pending = json.loads(trackfill(late, "status", "--json").stdout)["jobs_in_flight"]["pending"]
    assert pending["count"] == 2 and pending["late"] and pending["oldest_age_s"] >= 600
    assert "past RECONCILE_AFTER_S" in trackfill(late, "status").stdout
    patient = {**env, "RECONCILE_AFTER_S": "3600"}
    assert "past RECONCILE_AFTER_S" not in trackfill(patient, "status").stdout


# --- dead letters ----------------------------------------------------------------------


def test_dead_letters_before_any_queue_exists_are_none(env, vhost):
    assert json.loads(trackfill(env, "dead-letters", "list", "--json").stdout) == {
        "letters": [],
        "cut": [],
    }
    assert "0 dead letters" in trackfill(env, "dead-letters", "list").stdout
    assert "0 replayed" in trackfill(env, "dead-letters", "replay", "--all").stdout
    done = run(env, "dead-letters", "replay", "nope", "other")
    assert "0 replayed" in done.stdout
    failed(done, 1, "no dead letter has message id nope, other")


def test_a_dead_letter_listing_cut_at_its_limit_says_so_and_loses_nothing(env, db, vhost):
    with connect(env["AMQP_URL"]) as connection:
        publisher = MessagePublisher(connection)
        for n in range(3):
            publisher.publish_raw(JOB_COMPLETED, TASK.name, b"garbage", message_id=f"m{n}")
    ingestor = Service(build_ingestor, env)
    try:
        assert wait_until(lambda: queue_counts(env["AMQP_URL"], DEAD)[0] == 3, timeout=10)
    finally:
        ingestor.close()
    listed = json.loads(trackfill(env, "dead-letters", "list", "--limit", "2", "--json").stdout)
    assert [x["message_id"] for x in listed["letters"]] == ["m0", "m1"]
    assert listed["cut"] == [DEAD]
    table = trackfill(env, "dead-letters", "list", "--limit", "2").stdout
    assert f"{DEAD} holds more: only the first ones are listed" in table
    whole = json.loads(trackfill(env, "dead-letters", "list", "--json").stdout)
    assert len(whole["letters"]) == 3 and whole["cut"] == []
    assert queue_counts(env["AMQP_URL"], DEAD)[0] == 3
    # a replay that names one known and one unknown id replays the one, and says so
    done = run(env, "dead-letters", "replay", "m2", "m9")
    assert "replayed m2" in done.stdout and "1 replayed" in done.stdout
    failed(done, 1, "no dead letter has message id m9")


# --- job -------------------------------------------------------------------------------


def test_job_tells_a_purchase_whole_story_from_its_rows(env, db, sim):
    published = Published(db, sim)
    pid, other = published.make(0, 1)
    job = published.job(pid)
    with published.sessions() as session, session.begin():
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.id == job.id)
            .values(
                status="failed",
                error="not shipped yet",
                rejected={"estimated_delivery_date": "'soon' is not a date"},
                completed_at=func.now(),
            )
        )
        Recheck(Schedule(min_s=0, base_s=60, max_s=60)).record(session, pid, "not shipped yet")
        session.execute(
            insert(ApiCall).values(kind="get", at=func.now(), scraping_job_id=job.scraping_job_id)
        )
    data = json.loads(trackfill(env, "job", "--purchasing-id", str(pid), "--json").stdout)
    purchase = published.purchase(pid)
    assert data["purchase"]["id"] == pid
    assert data["purchase"]["order_number"] == purchase.order_number
    assert data["purchase"]["tracking_number"] is None
    assert data["purchase"]["delivery_status_code"] is None
    assert data["purchase"]["email"] == "b***@example.com"
    (shown,) = data["jobs"]
    assert (shown["custom_id"], shown["job_id"], shown["status"], shown["error"]) == (
        job.custom_id,
        job.scraping_job_id,
        "failed",
        "not shipped yet",
    )
    assert shown["rejected"] == {"estimated_delivery_date": "'soon' is not a date"}
    assert shown["batch_uuid"] == str(published.batch().batch_uuid)
    with published.sessions() as session:
        check = session.get(PurchaseCheck, pid)
    assert data["check"]["attempts"] == check.attempts == 1
    assert data["check"]["next_check_at"] == check.next_check_at.isoformat()
    assert data["check"]["expired"] is False
    assert [(c["kind"], c["job_id"]) for c in data["api_calls"]] == [("get", job.scraping_job_id)]
    # by order number, in any case: the same story, the other purchase not in it
    by_order = json.loads(trackfill(env, "job", purchase.order_number.lower(), "--json").stdout)
    assert [s["purchase"]["id"] for s in by_order["purchases"]] == [pid]
    table = trackfill(env, "job", purchase.order_number).stdout
    assert job.custom_id in table and "not shipped yet" in table and "gives up at" in table
    assert EMAIL not in table and published.job(other).custom_id not in table


def test_job_lists_the_follow_up_calls_the_ingestor_made_for_its_scraping_job(env, db, sim):
    published = Published(db, sim)
    pid, other = published.make(0, 1)
    assert wait_until(lambda: all(j["status"] == "finished" for j in sim.state.snapshot()["jobs"]))
    ingestor = Service(build_ingestor, env)
    try:
        for purchasing_id in (pid, other):
            job = published.job(purchasing_id)
            notify(env, job.custom_id, job.scraping_job_id)
        assert wait_until(lambda: published.ended(pid, other), timeout=15)
    finally:
        ingestor.close()
    data = json.loads(trackfill(env, "job", "--purchasing-id", str(pid), "--json").stdout)
    scraping_job_id = published.job(pid).scraping_job_id
    calls = [(c["kind"], c["job_id"], c["status"]) for c in data["api_calls"]]
    assert calls == [
        ("get", scraping_job_id, 200),
        ("json", scraping_job_id, 200),
    ]  # the other job's are not
    assert "API calls for them (the ledger): get 200, json 200" in (
        trackfill(env, "job", "--purchasing-id", str(pid)).stdout
    )


def test_job_says_when_a_purchase_was_given_up(env, db, sim):
    (pid,) = Published(db, sim).make(0)
    with Published(db, sim).sessions() as session, session.begin():
        Recheck(Schedule(min_s=0, base_s=60, max_s=60)).record(session, pid, "not shipped yet")
        session.execute(
            update(PurchaseCheck)
            .where(PurchaseCheck.purchasing_id == pid)
            .values(first_attempt_at=func.now() - dt.timedelta(days=31))
        )
    data = json.loads(trackfill(env, "job", "--purchasing-id", str(pid), "--json").stdout)
    assert data["check"]["expired"] is True
    assert "GIVEN UP" in trackfill(env, "job", "--purchasing-id", str(pid)).stdout


def test_job_of_an_unknown_purchase_or_order_is_one_line_and_exit_1(env, db):
    failed(run(env, "job", "--purchasing-id", "999999"), 1, "no purchase 999999")
    failed(run(env, "job", "W0000000000"), 1, "no purchase has order number W0000000000")
    usage_error(run(env, "job", "hello"), "order number")
    usage_error(run(env, "job", "--purchasing-id", "-3"), "not a positive whole number")
    usage_error(run(env, "job"), "required")


# --- enqueue ---------------------------------------------------------------------------


def test_enqueue_publishes_a_confirmed_candidate_the_publisher_makes_a_job_of(
    env, db, sim, vhost, tap
):
    pid = rows.purchase(db, rows.account(db, EMAIL))
    done = trackfill(env, "enqueue", "--purchasing-id", str(pid))
    assert f"purchase {pid}: the publisher creates a scraping job" in done.stdout
    assert "200 of 200 calls left" in done.stdout and "confirmed by RabbitMQ" in done.stdout
    (queued,) = candidates_queued(vhost)  # it waits for a publisher that is not running
    assert (queued["schema"], queued["purchasing_id"]) == ("candidate.found/1", pid)
    assert queued["id"] in done.stdout
    publisher = Service(build_publisher, env)
    published = Published(db, sim)
    try:
        assert wait_until(lambda: published.count(TrackingJob) == 1, timeout=15)
        assert wait_until(lambda: published.job(pid).scraping_job_id is not None, timeout=15)
        again = trackfill(env, "enqueue", "--purchasing-id", str(pid))
        job = published.job(pid)
        assert (
            f"in flight already ({job.custom_id}, pending, scraping job {job.scraping_job_id})"
            in (again.stdout)
        )
        assert wait_until(lambda: queue_counts(env["AMQP_URL"], PUBLISHER_CANDIDATES)[0] == 0)
    finally:
        publisher.close()
    assert published.count(TrackingJob) == 1  # the second request joined the first job
    assert len(sim.state.snapshot()["jobs"]) == 1


def test_enqueue_by_order_and_email_is_the_management_ui_request(env, db, vhost, tap):
    pid = rows.purchase(db, rows.account(db, EMAIL), tracking_number="123456789012")
    order = rows.column_of(db, Purchasing.order_number, pid)
    done = trackfill(env, "enqueue", "--order", order.lower(), "--email", "other@example.com")
    assert f"purchase {pid}: the publisher creates a scraping job" in done.stdout
    assert "it has tracking number 123456789012, which stays" in done.stdout
    assert "other@example.com" not in done.stdout and "o***@example.com" in done.stdout
    (queued,) = candidates_queued(vhost)
    assert (queued["order_number"], queued["email"]) == (order, "other@example.com")
    unknown = trackfill(env, "enqueue", "--order", "W0000000001", "--email", "x@example.com")
    assert "no purchase has order number W0000000001" in unknown.stdout
    assert len(candidates_queued(vhost)) == 2


def test_enqueue_refuses_what_the_publisher_would_refuse_and_queues_nothing(env, db, vhost):
    no_email = rows.purchase(db, rows.account(db, None))
    failed(run(env, "enqueue", "--purchasing-id", "999999"), 1, "no purchase 999999")
    failed(run(env, "enqueue", "--purchasing-id", str(no_email)), 1, "has no account e-mail")
    usage_error(run(env, "enqueue"), "give --purchasing-id, or --order with --email")
    usage_error(run(env, "enqueue", "--order", "W0000000001"), "--order and --email go together")
    usage_error(run(env, "enqueue", "--order", "W1", "--email", "a@b.c"), "order number")
    usage_error(run(env, "enqueue", "--order", "W0000000001", "--email", "a b@c"), "e-mail")
    usage_error(
        run(env, "enqueue", "--purchasing-id", "1", "--order", "W0000000001", "--email", "a@b.c"),
        "give --purchasing-id, or --order with --email",
    )
    assert not any(queue_counts(env["AMQP_URL"], q.name)[0] for q in all_queues() if q.name != TAP)
