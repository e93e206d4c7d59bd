"""The selector on real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid

import pika
import pytest
from sqlalchemy import func, select, text, update

from selector.service import Selector
from shared.db.batches import NewJob, create_batch
from shared.db.models import PurchaseCheck, Purchasing, SyncLog, TrackingBatch, TrackingJob
from shared.db.rechecks import Page, Recheck
from shared.db.session import make_session_factory, transaction
from shared.domain.schedule import TOKYO, Schedule
from shared.domain.statuses import is_done
from shared.messaging.publishing import MessagePublisher, PublishError, connect
from shared.messaging.topology import declare_topology
from shared.settings import load_settings
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO
from tests.support import rows
from tests.support.waiting import wait_until
from tests.unit.test_statuses import CLOSED, DELIVERED, KEEP_CHECKING

pytestmark = pytest.mark.integration
TASK = "official_website_redirect_to_yamato_tracking"


@pytest.fixture
def env(database_url, vhost) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": vhost.amqp_url,
        "SELECTOR_MAX_RECORDS": "20",
        "RECHECK_BASE_S": "60",
        "RECHECK_MAX_S": "200",
        "SELECTOR_REPUBLISH_GRACE_S": "0",
    }


@pytest.fixture
def settings(env):
    return load_settings(env)


@pytest.fixture
def sessions(db):
    return make_session_factory(db)


@pytest.fixture
def publisher(vhost):
    connection = connect(vhost.amqp_url)
    declare_topology(connection)
    yield MessagePublisher(connection)
    connection.release()


@pytest.fixture
def selector(settings, sessions, publisher) -> Selector:
    return Selector(settings, sessions, publisher)


@pytest.fixture
def acct(db) -> int:
    return rows.account(db)


def drain(vhost, queue: str = "publisher.candidates") -> list[tuple[object, object, dict]]:
    """Consume what is in ``queue`` now: (method, properties, body) per message."""
    connection = pika.BlockingConnection(pika.URLParameters(vhost.amqp_url))
    try:
        channel = connection.channel()
        messages = []
        for method, properties, body in channel.consume(queue, inactivity_timeout=0.5):
            if method is None:
                break
            channel.basic_ack(method.delivery_tag)
            messages.append((method, properties, json.loads(body)))
        return messages
    finally:
        connection.close()


def selected_ids(selector: Selector) -> set[int]:
    candidates, _ = selector.preview()
    return {c.match.purchasing_id for c in candidates}


def count(engine, model) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


# -- the filter, clause by clause --------------------------------------------------------


def test_order_numbers_must_start_with_w_in_either_case(db, selector, acct):
    upper = rows.purchase(db, acct, "W1234567890")
    lower = rows.purchase(db, acct, "w1234567891")
    rows.purchase(db, acct, "X1234567892")
    rows.purchase(db, acct, "1234567893")
    assert selected_ids(selector) == {upper, lower}


def test_purchases_without_an_account_are_not_selected(db, selector):
    rows.purchase(db, None)
    assert selected_ids(selector) == set()


@pytest.mark.parametrize("email", [None, "", "   ", "\t"])
def test_skips_purchases_whose_account_has_no_email(db, selector, email):
    rows.purchase(db, rows.account(db, email))
    assert selected_ids(selector) == set()


@pytest.mark.parametrize(
    ("tracking_number", "selected"), [(None, True), ("", True), ("444413758703", False)]
)
def test_only_purchases_without_a_tracking_number(db, selector, acct, tracking_number, selected):
    pid = rows.purchase(db, acct, tracking_number=tracking_number)
    assert (pid in selected_ids(selector)) is selected


def test_the_done_rule_in_sql_agrees_with_the_python_rule(db, selector, acct, settings):
    statuses = DELIVERED + CLOSED + [s for s in KEEP_CHECKING if s is not None]
    ids = {rows.purchase(db, acct, latest_delivery_status=s): s for s in statuses}
    null_status = rows.purchase(db, acct, latest_delivery_status=None)
    wide = Selector(
        load_settings({**_env(settings), "SELECTOR_MAX_RECORDS": "500"}), selector._sessions, None
    )
    chosen = selected_ids(wide)
    assert null_status in chosen
    for pid, status in ids.items():
        assert (pid in chosen) is (not is_done(status)), status
    assert "配達完了" in statuses and "お届け先にお届け済み" in statuses  # the seed's strings


def _env(settings) -> dict[str, str]:
    return {"DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url}


# -- the pass ------------------------------------------------------------------------------


def test_a_pass_takes_the_20_oldest_of_25_and_the_next_pass_the_rest(db, selector, acct, vhost):
    ids = [rows.purchase(db, acct) for _ in range(25)]
    first = selector.run_pass()
    assert (first.found, first.dispatched) == (20, 20)
    assert {m[2]["purchasing_id"] for m in drain(vhost)} == set(ids[:20])
    second = selector.run_pass()
    assert second.dispatched == 5
    assert {m[2]["purchasing_id"] for m in drain(vhost)} == set(ids[20:])
    third = selector.run_pass()
    assert (third.found, third.dispatched, third.batch_uuid) == (0, 0, None)
    assert count(db, TrackingBatch) == 2  # no batch when nothing matches


def test_a_purchase_with_a_job_in_flight_is_not_selected_again(db, selector, acct):
    pid = rows.purchase(db, acct)
    selector.run_pass()
    assert selected_ids(selector) == set()
    with db.begin() as connection:
        connection.execute(update(TrackingJob).values(status="completed"))
    assert selected_ids(selector) == {pid}


def test_the_database_refuses_a_second_job_in_flight_for_a_purchase(db, selector, acct):
    from sqlalchemy.exc import IntegrityError

    rows.purchase(db, acct)
    selector.run_pass()
    with pytest.raises(IntegrityError, match="uq_tracking_job_in_flight_purchase"), db.begin() as c:
        c.execute(
            text(
                "INSERT INTO tracking_job (batch_id, purchasing_id, custom_id, target_url, "
                "index, status) SELECT batch_id, purchasing_id, 'owryt-dup-0000', "
                "target_url, 1, 'pending' FROM tracking_job"
            )
        )


def test_batch_and_job_rows_carry_the_seeds_values(db, selector, acct, sessions):
    ids = [rows.purchase(db, acct, f"w12345678{n}0") for n in range(3)]
    result = selector.run_pass()
    with sessions() as session:
        batch = session.execute(select(TrackingBatch)).scalar_one()
        jobs = session.execute(select(TrackingJob).order_by(TrackingJob.index)).scalars().all()
    short = batch.batch_uuid.hex[:8]
    assert str(batch.batch_uuid) == result.batch_uuid
    assert batch.file_path == f"purchasing_query_tracking_number_empty_{short}"
    assert batch.task_name == TASK
    assert (batch.total_jobs, batch.completed_jobs, batch.failed_jobs) == (3, 0, 0)
    assert batch.status == "pending"
    assert [j.custom_id for j in jobs] == [f"owryt-{short}-{i:04d}" for i in range(3)]
    assert [j.index for j in jobs] == [0, 1, 2]
    assert [j.purchasing_id for j in jobs] == ids
    assert jobs[0].target_url == (
        "https://store.apple.com/go/jp/vieworder/W1234567800/user@example.com"
    )
    assert {j.status for j in jobs} == {"queued"}
    assert all(j.scraping_job_id is None and j.published_at is not None for j in jobs)


def test_one_candidate_found_per_candidate_with_the_contracts_body(
    db, selector, acct, vhost, sessions
):
    pids = [rows.purchase(db, acct) for _ in range(2)]
    result = selector.run_pass()
    messages = drain(vhost)
    assert len(messages) == 2
    with sessions() as session:
        custom_ids = (
            session.execute(select(TrackingJob.custom_id).order_by(TrackingJob.index))
            .scalars()
            .all()
        )
    for (method, properties, body), pid, custom_id in zip(messages, pids, custom_ids, strict=True):
        assert method.routing_key == TASK
        assert properties.delivery_mode == 2
        assert properties.content_type == "application/json"
        assert body.pop("id") == properties.message_id
        assert re.match(r"\d{4}-\d\d-\d\dT", body.pop("created_at"))
        assert body == {
            "schema": "candidate.found/1",
            "task": TASK,
            "purchasing_id": pid,
            "custom_id": custom_id,
            "batch_uuid": result.batch_uuid,
        }


def test_unsafe_rows_are_reported_skipped_and_do_not_block_the_others(db, selector, acct):
    bad = {
        rows.purchase(db, acct, "W123"): "not W followed by 9 or 10 digits",
        rows.purchase(db, rows.account(db, "us er@example.com")): "' '",
        rows.purchase(db, rows.account(db, "user/../x@example.com")): "'/'",
        rows.purchase(db, rows.account(db, "nobody")): "name@domain.tld",
    }
    good = [rows.purchase(db, acct) for _ in range(20)]
    result = selector.run_pass()
    assert result.dispatched == 20
    assert {s.match.purchasing_id: s.reason for s in result.skipped}.keys() == bad.keys()
    for skipped in result.skipped:
        assert bad[skipped.match.purchasing_id] in skipped.reason
    with db.connect() as connection:
        log = connection.execute(select(SyncLog)).one()
    assert {s["purchasing_id"] for s in log.details["skipped"]} == set(bad)
    assert set(good) == {j for j in _job_purchases(db)}
    assert selector.run_pass().skipped == []  # reported once, then they wait their re-check


def _job_purchases(db) -> list[int]:
    with db.connect() as connection:
        return connection.execute(select(TrackingJob.purchasing_id)).scalars().all()


def test_a_pass_writes_its_sync_log_row_and_the_seeds_log_lines(db, selector, acct, caplog):
    rows.purchase(db, acct, "W1234567890")
    caplog.set_level("INFO")
    result = selector.run_pass(source="manual")
    with db.connect() as connection:
        log = connection.execute(select(SyncLog)).one()
    assert (log.operation_type, log.success, log.message) == (
        "tracking_number_empty_triggered",
        True,
        "Dispatched 1 tasks",
    )
    assert log.details["batch_uuid"] == result.batch_uuid
    assert (log.details["found"], log.details["dispatched"], log.details["source"]) == (
        1,
        1,
        "manual",
    )
    lines = [r.getMessage() for r in caplog.records]
    short = result.batch_uuid.replace("-", "")[:8]
    assert "[tracking_number_empty_worker] Found 1 matching records" in lines
    assert f"[tracking_number_empty_worker] Created TrackingBatch {short} with 1 jobs" in lines
    assert (
        f"[tracking_number_empty_worker] Dispatched task 1/1: owryt-{short}-0000 "
        "for order W1234567890"
    ) in lines
    assert "[tracking_number_empty_worker] Execution complete: dispatched 1 tasks" in lines
    assert not any("user@example.com" in line for line in lines)


def test_an_empty_pass_logs_no_matching_records(db, selector):
    selector.run_pass()
    with db.connect() as connection:
        log = connection.execute(select(SyncLog)).one()
    assert (log.success, log.message, log.details["found"]) == (True, "No matching records", 0)


def test_preview_changes_nothing_anywhere(db, settings, sessions, acct, vhost):
    selector = Selector(settings, sessions, publisher=None)
    rows.purchase(db, acct)
    rows.purchase(db, acct, "W1")
    before = {m: count(db, m) for m in (TrackingBatch, TrackingJob, SyncLog, PurchaseCheck)}
    candidates, skipped = selector.preview()
    assert (len(candidates), len(skipped)) == (1, 1)
    assert {m: count(db, m) for m in before} == before == {m: 0 for m in before}
    assert vhost.management.queues(vhost.name) == []  # the broker was not even touched


# -- re-checks ----------------------------------------------------------------------------


def test_a_purchase_waits_for_its_recheck_and_the_delay_doubles_up_to_the_max(
    db, sessions, selector, acct
):
    pid = rows.purchase(db, acct)
    delays = []
    for _ in range(4):
        with transaction(sessions) as session:
            Recheck(Schedule(min_s=0, base_s=60, max_s=200)).record(session, pid, "not shipped yet")
            delays.append(
                session.execute(
                    select(func.extract("epoch", PurchaseCheck.next_check_at - func.now()))
                ).scalar_one()
            )
        assert selected_ids(selector) == set()
    assert [round(float(d)) for d in delays] == [60, 120, 200, 200]
    with db.begin() as connection:
        connection.execute(update(PurchaseCheck).values(next_check_at=func.now()))
    assert selected_ids(selector) == {pid}


def next_check(sessions, pid):
    with sessions() as session:
        check = session.get(PurchaseCheck, pid)
        wait = session.execute(
            select(func.extract("epoch", PurchaseCheck.next_check_at - func.now())).where(
                PurchaseCheck.purchasing_id == pid
            )
        ).scalar_one()
        return check, None if wait is None else float(wait)


def test_the_next_look_follows_the_estimate_and_a_cancelled_purchase_is_never_selected(
    db, sessions, selector, acct
):
    far, cancelled = rows.purchase(db, acct), rows.purchase(db, acct)
    today = dt.datetime.now(TOKYO).date()
    estimate = (today + dt.timedelta(days=8), today + dt.timedelta(days=9))
    recheck = Recheck(Schedule())
    with transaction(sessions) as session:
        recheck.record(session, far, "not shipped yet", Page("処理中", estimate))
        recheck.record(session, cancelled, "status キャンセル済み", Page("キャンセル済み"))
    check, wait = next_check(sessions, far)
    assert (check.last_status, check.estimate_from, check.estimate_to) == ("処理中", *estimate)
    # shipping becomes likely two days (the transit) before the estimate's first day
    likely = dt.datetime.combine(estimate[0], dt.time(), TOKYO) - dt.timedelta(days=2)
    assert abs(wait - (likely - dt.datetime.now(TOKYO)).total_seconds()) < 60
    check, wait = next_check(sessions, cancelled)
    assert (check.next_check_at, wait) == (None, None)
    with db.begin() as connection:
        connection.execute(
            update(PurchaseCheck)
            .where(PurchaseCheck.purchasing_id == far)
            .values(next_check_at=func.now())
        )
    assert selected_ids(selector) == {far}


def test_a_look_that_read_no_page_keeps_what_the_last_page_said(db, sessions, acct):
    pid = rows.purchase(db, acct)
    recheck = Recheck(Schedule())
    with transaction(sessions) as session:
        recheck.record(session, pid, "not shipped yet", Page("出荷準備中"))
    with transaction(sessions) as session:
        recheck.record(session, pid, "scraping job failed")  # no page
    check, wait = next_check(sessions, pid)
    assert (check.attempts, check.last_status, check.last_reason) == (
        2,
        "出荷準備中",
        "scraping job failed",
    )
    assert 16_140 < wait <= 16_200  # still the preparing wait, not the back-off's second step


def test_a_purchase_attempted_for_longer_than_recheck_expire_s_is_given_up_and_counted(
    db, sessions, settings, publisher, acct
):
    expiring, fresh, filled = (rows.purchase(db, acct) for _ in range(3))
    with transaction(sessions) as session:
        for pid in (expiring, fresh, filled):
            Recheck(Schedule(min_s=0, base_s=0, max_s=0)).record(session, pid, "not shipped yet")
        session.execute(
            update(PurchaseCheck)
            .where(PurchaseCheck.purchasing_id.in_([expiring, filled]))
            .values(first_attempt_at=func.now() - func.make_interval(0, 0, 0, 31))
        )
    with db.begin() as connection:  # a number written by anyone ends the matter
        connection.execute(
            update(Purchasing).where(Purchasing.id == filled).values(tracking_number="1" * 12)
        )
    selector = Selector(
        load_settings({**settings_env(settings), "RECHECK_EXPIRE_S": "2592000"}),
        sessions,
        publisher,
    )
    assert selected_ids(selector) == {fresh}
    result = selector.run_pass("test")
    assert (result.dispatched, result.expired) == (1, 1)
    with sessions() as session:
        log = session.execute(select(SyncLog).order_by(SyncLog.id.desc()).limit(1)).scalar_one()
    assert log.details["expired"] == 1
    # a longer RECHECK_EXPIRE_S takes it back
    patient = Selector(
        load_settings({**settings_env(settings), "RECHECK_EXPIRE_S": "3000000"}),
        sessions,
        publisher,
    )
    assert selected_ids(patient) == {expiring}


def settings_env(settings) -> dict[str, str]:
    return {"DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url}


# -- concurrency and recovery ----------------------------------------------------------------


def test_two_passes_at_once_select_disjoint_purchases(db, env, sessions, vhost, acct):
    # the default grace: a pass does not re-publish the jobs the other is still publishing
    settings = load_settings({**env, "SELECTOR_REPUBLISH_GRACE_S": "120"})
    ids = {rows.purchase(db, acct) for _ in range(30)}
    results, errors = [], []
    barrier = threading.Barrier(2)

    def one_pass():
        connection = connect(vhost.amqp_url)
        try:
            barrier.wait()
            results.append(Selector(settings, sessions, MessagePublisher(connection)).run_pass())
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.release()

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(r.dispatched for r in results) == [10, 20]
    selected = _job_purchases(db)
    assert len(selected) == len(set(selected)) == 30 and set(selected) == ids
    assert len(drain(vhost)) == 30


def test_jobs_committed_but_never_published_are_republished_by_the_next_pass(
    db, settings, sessions, selector, acct, vhost
):
    pid = rows.purchase(db, acct)
    crashed = Selector(settings, sessions, publisher=None)  # "dies" before publishing
    with pytest.raises(PublishError):
        crashed.run_pass()
    assert drain(vhost) == []
    result = selector.run_pass()
    assert (result.republished, result.dispatched) == (1, 0)
    (message,) = drain(vhost)
    assert message[2]["purchasing_id"] == pid
    assert count(db, TrackingBatch) == 1
    assert selector.run_pass().republished == 0  # once published, never again


def test_a_pass_still_publishing_is_left_alone_within_the_grace(
    db, env, sessions, selector, acct, vhost
):
    rows.purchase(db, acct)
    with pytest.raises(PublishError):
        Selector(load_settings(env), sessions, publisher=None).run_pass()
    patient = Selector(
        load_settings({**env, "SELECTOR_REPUBLISH_GRACE_S": "3600"}), sessions, selector._publisher
    )
    assert patient.run_pass().republished == 0
    with db.connect() as connection:
        failed = connection.execute(select(SyncLog).where(SyncLog.success.is_(False))).one()
    assert "no broker connection" in failed.details["error"]


def test_batch_uuid_in_messages_is_a_uuid(db, selector, acct, vhost):
    rows.purchase(db, acct)
    selector.run_pass()
    (message,) = drain(vhost)
    uuid.UUID(message[2]["batch_uuid"])


def test_matches_are_read_page_by_page_in_order_without_repeats(db, sessions, acct):
    from selector.selection import choose, iter_matches

    unsafe = [rows.purchase(db, acct, "W1") for _ in range(5)]
    safe = [rows.purchase(db, acct) for _ in range(4)]
    with sessions() as session:
        everything = [m.purchasing_id for m in iter_matches(session, 3600.0, page_size=3)]
        candidates, skipped = choose(iter_matches(session, 3600.0, page_size=3), limit=4)
    assert everything == unsafe + safe
    assert [c.match.purchasing_id for c in candidates] == safe
    assert [s.match.purchasing_id for s in skipped] == unsafe


@pytest.fixture
def slow_job_inserts(db):
    """Every insert into tracking_job sleeps a second before its transaction goes on."""
    with db.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION test_slow_insert() RETURNS trigger AS $$ "
                "BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER test_slow_insert AFTER INSERT ON tracking_job "
                "FOR EACH ROW EXECUTE FUNCTION test_slow_insert()"
            )
        )
    yield
    with db.begin() as connection:
        connection.execute(text("DROP TRIGGER IF EXISTS test_slow_insert ON tracking_job"))
        connection.execute(text("DROP FUNCTION IF EXISTS test_slow_insert()"))


def a_manual_request(sessions, pid: int) -> None:
    from publisher.jobs import CandidateJobs as PublisherJobs
    from shared.contracts import CandidateFound

    PublisherJobs(sessions).resolve(
        CandidateFound(TASK, pid), OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO, "message-1"
    )


def another_systems_job(sessions, pid: int) -> None:
    """A writer that knows nothing of the batches lock."""
    with transaction(sessions) as session:
        url = f"https://store.apple.com/go/jp/vieworder/W{pid:010d}/user@example.com"
        create_batch(session, OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO, [NewJob(pid, "W1", url)])


@pytest.mark.parametrize("writer", [a_manual_request, another_systems_job])
def test_a_job_made_for_a_purchase_during_a_pass_neither_breaks_it_nor_doubles_the_job(
    selector, sessions, db, slow_job_inserts, writer
):
    pid = rows.purchase(db, rows.account(db))
    other = threading.Thread(target=writer, args=(sessions, pid))
    other.start()  # its job is written, its transaction still open
    asleep = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event = 'PgSleep' AND datname = current_database()"
    )

    def sleeping() -> int:  # a connection each time: a transaction sees one snapshot
        with db.connect() as connection:
            return connection.execute(asleep).scalar_one()

    assert wait_until(lambda: sleeping() == 1)
    result = selector.run_pass("manual")  # no IntegrityError
    other.join(10)
    assert result.dispatched == 0 and result.error is None
    with db.connect() as connection:
        in_flight = connection.execute(
            select(func.count()).where(TrackingJob.purchasing_id == pid)
        ).scalar_one()
    assert in_flight == 1


def test_a_purchases_attempts_begin_when_its_first_job_was_made(db, sessions, acct):
    """Giving up counts RECHECK_EXPIRE_S from the first look's start: the creation of the
    purchase's first tracking job (as migration 0006 filled it in), not the moment that
    look ended; later attempts keep it."""
    pid = rows.purchase(db, acct)
    with transaction(sessions) as session:
        (job,) = create_batch(
            session, OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO, [NewJob(pid, "W0000000000", "u")]
        )
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.id == job.id)
            .values(created_at=func.now() - func.make_interval(0, 0, 0, 0, 2))
        )
    for _ in range(2):
        with transaction(sessions) as session:
            Recheck(Schedule(min_s=0, base_s=60, max_s=60)).record(session, pid, "not shipped yet")
    with sessions() as session:
        began, made = session.execute(
            select(PurchaseCheck.first_attempt_at, TrackingJob.created_at).join(
                TrackingJob, TrackingJob.purchasing_id == PurchaseCheck.purchasing_id
            )
        ).one()
    assert began == made
