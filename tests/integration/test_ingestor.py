"""The ingestor on real PostgreSQL and RabbitMQ against the simulator: scraping jobs are
created in the simulator the way the publisher creates them, and their notifications
arrive through the real gateway (or are published directly where a test needs to
choose them). The simulator's last-digit scenarios decide each page."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select, text, update

from demo.stack import free_port
from ingestor.__main__ import build as build_ingestor
from ingestor.__main__ import completion_handler
from shared.contracts import JobCompleted
from shared.db.models import (
    ApiCall,
    ProcessedNotification,
    PurchaseCheck,
    Purchasing,
    SyncLog,
    TrackingJob,
)
from shared.messaging.consuming import Delivery
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import MessagePublisher, connect
from shared.messaging.topology import INGESTOR_COMPLETIONS, JOB_COMPLETED
from shared.settings import load_settings
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK
from tests.conftest import SIM_TOKEN
from tests.support.published import Published
from tests.support.rabbit import payload_json
from tests.support.waiting import wait_until
from webhook_gateway.__main__ import build as build_gateway
from webscraper_sim.scenarios import valid_tracking_number

pytestmark = pytest.mark.integration
WEBHOOK_TOKEN = "ingestor-test-webhook-token-0123456789"
PATH = "/api/acquisition/webscraper/webscraper-tracking/"


@pytest.fixture
def env(database_url, vhost, sim) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": vhost.amqp_url,
        "WEBSCRAPER_API_URL": sim.api_url,
        "WEBSCRAPER_API_TOKEN": SIM_TOKEN,
        "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "INGEST_RETRY_S": "0.2",
        "INGEST_MAX_RETRIES": "3",
        "RECHECK_BASE_S": "60",
        "RECHECK_MAX_S": "600",
        "SCHEDULE_MIN_S": "30",
        "HTTP_TIMEOUT_S": "2",
        "AMQP_HEARTBEAT_S": "5",
    }


@contextlib.contextmanager
def running_ingestor(env):
    stop = threading.Event()
    loop = build_ingestor(load_settings(env), stop)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    assert loop.ready.wait(15)
    yield
    stop.set()
    thread.join(15)
    assert not thread.is_alive()


@pytest.fixture
def ingestor(env):
    with running_ingestor(env):
        yield


@pytest.fixture
def failing_fill(db):
    """Make the fill of one purchase fail with a given SQLSTATE: ``once`` (a sequence,
    which no rollback undoes) or every time."""

    def install(purchasing_id: int, sqlstate: str, once: bool) -> None:
        condition = "nextval('test_fill_failures') = 1" if once else "true"
        with db.begin() as connection:
            connection.execute(text("CREATE SEQUENCE test_fill_failures"))
            connection.execute(
                text(
                    f"""CREATE FUNCTION test_fail_fill() RETURNS trigger AS $$
                    BEGIN
                      IF NEW.id = {int(purchasing_id)} AND {condition} THEN
                        RAISE EXCEPTION 'the test refuses this fill' USING ERRCODE = '{sqlstate}';
                      END IF;
                      RETURN NEW;
                    END $$ LANGUAGE plpgsql"""
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER test_fail_fill BEFORE UPDATE ON purchasing "
                    "FOR EACH ROW EXECUTE FUNCTION test_fail_fill()"
                )
            )

    yield install
    with db.begin() as connection:
        connection.execute(text("DROP TRIGGER IF EXISTS test_fail_fill ON purchasing"))
        connection.execute(text("DROP FUNCTION IF EXISTS test_fail_fill()"))
        connection.execute(text("DROP SEQUENCE IF EXISTS test_fill_failures"))


@pytest.fixture
def gateway(env, sim):
    """The real gateway on a free port; the simulator notifies it."""
    port = free_port()
    settings = load_settings({**env, "GATEWAY_BIND": f"127.0.0.1:{port}", "GATEWAY_THREADS": "4"})
    server, publishers = build_gateway(settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    sim.state.config.webhook_url = f"http://127.0.0.1:{port}{PATH}?token={WEBHOOK_TOKEN}"
    yield
    sim.state.config.webhook_url = None
    server.close()
    publishers.close()


@pytest.fixture
def published(db, sim):
    return Published(db, sim)


def notify(
    env, job: TrackingJob, status: str = "finished", scraping_job_id: int | None = None
) -> None:
    event = JobCompleted(
        task=TASK.name,
        scraping_job_id=scraping_job_id or job.scraping_job_id,
        status=status,
        custom_id=job.custom_id,
        sitemap_id=TASK.sitemap_id,
    )
    with connect(env["AMQP_URL"]) as connection:
        MessagePublisher(connection).publish(
            JOB_COMPLETED, TASK.name, new_envelope(JOB_COMPLETED, event.to_payload())
        )


def test_webhooks_fill_every_scenario_end_to_end(published, gateway, ingestor, sim):
    ids = published.make(*range(10), "97", "98")
    by = dict(zip([*range(10), "97", "98"], ids, strict=True))
    assert wait_until(lambda: published.ended(*ids), timeout=30)
    filled = {d: published.purchase(by[d]) for d in (0, 1, 2, 3, 6)}
    for purchase in filled.values():
        assert len(purchase.tracking_number) == 12 and purchase.tracking_number.isdigit()
    assert filled[1].tracking_number.startswith("4")  # printed 1234-5678-9012 by the page
    assert filled[2].latest_delivery_status == "配達中"  # full-width number normalised
    assert filled[3].shipping_method == "JP LOGISTICS GROUP CO., LTD."
    assert filled[3].estimated_delivery_date is not None
    assert filled[6].latest_delivery_status == "配達完了(宅配ボックス)"
    assert filled[0].estimated_delivery_date > dt.date.today() - dt.timedelta(days=2)
    not_yet = published.purchase(by[4])
    assert not_yet.tracking_number is None and not_yet.latest_delivery_status == "伝票番号未登録"
    assert published.purchase(by[5]).latest_delivery_status == "出荷準備中"
    garbage = published.purchase(by[9])
    assert garbage.tracking_number is None and garbage.latest_delivery_status is None
    # the normalised code is written with the raw status, and only with it
    codes = {d: published.purchase(by[d]).delivery_status_code for d in (2, 4, 5, 6, 9)}
    assert codes == {2: "out_for_delivery", 4: "pending", 5: "pending", 6: "delivered", 9: None}
    assert set(published.job(by[9]).rejected) == {
        "tracking_number_check_digit",
        "delivery_status_markup",
        "estimated_delivery_date_unparseable",
    }
    assert published.job(by[7]).error == "no data: empty page"
    assert published.job(by[8]).error == "no data: failed page"
    assert published.job(by["97"]).error == "scraping job stopped"
    assert published.job(by["98"]).error == "scraping job failed"
    failed = {d for d in by if published.job(by[d]).status == "failed"}
    assert failed == {7, 8, "97", "98"}
    batch = published.batch()
    assert (batch.status, batch.completed_jobs, batch.failed_jobs) == ("partial", 8, 4)
    # every job without a valid number waits for its re-check; the filled ones do not
    with published.sessions() as session:
        waiting = set(session.execute(select(PurchaseCheck.purchasing_id)).scalars())
    assert waiting == {by[d] for d in (4, 5, 7, 8, 9, "97", "98")}
    # each waits as the schedule reads its page: Apple preparing the parcel 4.5 h (its
    # estimate kept as a range), no estimate the back-off's first step (RECHECK_BASE_S)
    with published.sessions() as session:
        checks = {
            c.purchasing_id: (c.last_status, c.estimate_from, c.estimate_to, round(wait))
            for c, wait in session.execute(
                select(
                    PurchaseCheck, func.extract("epoch", PurchaseCheck.next_check_at - func.now())
                )
            )
        }
    status, first, last, wait = checks[by[5]]
    assert (status, (last - first).days, 16_100 < wait <= 16_200) == ("出荷準備中", 7, True)
    assert checks[by[4]][0:3] == ("伝票番号未登録", None, None) and 0 < checks[by[4]][3] <= 60
    assert checks[by[7]][0] is None and 0 < checks[by[7]][3] <= 60
    # two follow-up calls per job with records (status, data); one where the status says
    # there is nothing to download (an empty or failed page, a job stopped or failed)
    assert len(published.calls("get")) == 12 and len(published.calls("json")) == 8
    with published.sessions() as session:
        (log,) = session.execute(
            select(SyncLog).where(SyncLog.operation_type == "tracking_number_empty_completed")
        ).scalars()
    assert log.success is False and log.details["status"] == "partial"
    assert log.details["rejected_values"]["tracking_number_check_digit"] == 1
    assert len(log.details["failed"]) == 4


def test_three_duplicates_out_of_order_are_counted_once(published, gateway, ingestor, sim, vhost):
    sim.state.faults.update(
        {"webhook_duplicates": 3, "webhook_out_of_order": True, "webhook_hold_s": 0.5}
    )
    ids = published.make(0, 1, 4)
    assert wait_until(lambda: published.ended(*ids), timeout=30)
    assert wait_until(lambda: len(sim.state.snapshot()["webhooks"]) == 9, timeout=10)
    # all nine handled: nothing ready or unacknowledged (the management API's figures)
    assert wait_until(lambda: vhost.queue(INGESTOR_COMPLETIONS).get("messages") == 0, timeout=15)
    assert published.count(ProcessedNotification) == 3
    batch = published.batch()
    assert (batch.status, batch.completed_jobs, batch.failed_jobs) == ("completed", 3, 0)
    with published.sessions() as session:
        checks = session.execute(select(PurchaseCheck)).scalars().all()
        logs = session.execute(select(func.count()).select_from(SyncLog)).scalar_one()
    assert [(c.purchasing_id, c.attempts) for c in checks] == [(ids[2], 1)]
    assert logs == 1
    # the duplicates cost no API call
    assert len(published.calls("get")) == 3 and len(published.calls("json")) == 3


def finished(sim, count: int) -> bool:
    jobs = sim.state.snapshot()["jobs"]
    return len(jobs) == count and all(j["status"] == "finished" for j in jobs)


def test_notifications_that_arrive_together_are_written_together_and_once(
    env, published, sim, vhost
):
    ids = published.make(0, 1, 2, 3, 4)
    assert wait_until(lambda: finished(sim, 5), timeout=5)
    jobs = [published.job(pid) for pid in ids]
    for job in [*jobs, jobs[0], jobs[0]]:  # the first one three times
        notify(env, job)
    with running_ingestor(env):
        assert wait_until(lambda: published.ended(*ids), timeout=20)
        assert wait_until(
            lambda: vhost.queue(INGESTOR_COMPLETIONS).get("messages") == 0, timeout=15
        )
    ended_at = {published.job(pid).completed_at for pid in ids}
    assert len(ended_at) < len(ids)  # now() is the transaction's: some shared one
    assert published.count(ProcessedNotification) == 5
    assert len(published.calls("get")) == 5 and len(published.calls("json")) == 5
    with published.sessions() as session:  # the ledger has every answer, written together
        answers = session.execute(
            select(ApiCall.kind, ApiCall.status).where(ApiCall.kind.in_(("get", "json")))
        ).all()
    assert sorted(answers) == [("get", 200)] * 5 + [("json", 200)] * 5
    batch = published.batch()
    assert (batch.status, batch.completed_jobs, batch.failed_jobs) == ("completed", 5, 0)


def test_a_job_that_cannot_be_written_does_not_hold_back_its_group(
    env, published, sim, vhost, failing_fill
):
    ids = published.make(0, 1, 2)
    assert wait_until(lambda: finished(sim, 3), timeout=5)
    failing_fill(ids[1], "P0001", once=False)  # not an outage: a bug for that job
    for pid in ids:
        notify(env, published.job(pid))
    with running_ingestor(env):
        (dead,) = vhost.management.wait_for_messages(
            vhost.name, f"{INGESTOR_COMPLETIONS}.dead-letter", 1
        )
        assert wait_until(lambda: published.ended(ids[0], ids[2]), timeout=10)
    reason = dead["properties"]["headers"]["x-trackfill-reason"]
    assert "the test refuses this fill" in reason
    assert payload_json(dead)["custom_id"] == published.job(ids[1]).custom_id
    assert published.job(ids[1]).status == "pending"  # nothing of it was written
    assert published.purchase(ids[0]).tracking_number is not None
    assert published.purchase(ids[2]).tracking_number is not None


def test_a_write_that_an_outage_stopped_is_retried_without_calling_the_api_again(
    env, published, sim, failing_fill
):
    ids = published.make(0, 1)
    assert wait_until(lambda: finished(sim, 2), timeout=5)
    failing_fill(ids[1], "40001", once=True)  # a serialization failure: try again
    for pid in ids:
        notify(env, published.job(pid))
    with running_ingestor(env):
        assert wait_until(lambda: published.ended(*ids), timeout=15)
    assert [published.job(pid).status for pid in ids] == ["completed", "completed"]
    assert all(published.purchase(pid).tracking_number for pid in ids)
    assert len(published.calls("get")) == 2 and len(published.calls("json")) == 2


def test_a_job_id_mismatch_is_dead_lettered_with_its_reason(env, published, ingestor, vhost):
    (pid,) = published.make(0)
    job = published.job(pid)
    notify(env, job, scraping_job_id=job.scraping_job_id + 1000)
    (dead,) = vhost.management.wait_for_messages(
        vhost.name, f"{INGESTOR_COMPLETIONS}.dead-letter", 1
    )
    reason = dead["properties"]["headers"]["x-trackfill-reason"]
    assert (
        f"scraping job {job.scraping_job_id + 1000}" in reason
        and f"has {job.scraping_job_id}" in reason
    )
    assert published.job(pid).status == "pending"
    assert published.calls("get") == []


def test_an_unknown_custom_id_is_dead_lettered(env, published, ingestor, vhost):
    (pid,) = published.make(0)
    job = published.job(pid)
    ghost = TrackingJob(custom_id="owryt-00000000-0042", scraping_job_id=job.scraping_job_id)
    notify(env, ghost)
    (dead,) = vhost.management.wait_for_messages(
        vhost.name, f"{INGESTOR_COMPLETIONS}.dead-letter", 1
    )
    assert (
        "no tracking_job has custom_id 'owryt-00000000-0042'"
        in (dead["properties"]["headers"]["x-trackfill-reason"])
    )
    assert payload_json(dead)["custom_id"] == "owryt-00000000-0042"


def test_late_data_is_waited_for_parked_and_costs_one_download_per_retry(
    env, published, ingestor, sim
):
    sim.state.faults.update({"data_delay_s": 0.5})
    (pid,) = published.make(0)
    job = published.job(pid)
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", timeout=5)
    notify(env, job)
    assert wait_until(lambda: published.ended(pid), timeout=20)
    assert published.job(pid).status == "completed"
    assert published.purchase(pid).tracking_number is not None
    assert len(published.calls("get")) == 1 and 2 <= len(published.calls("json")) <= 4


def test_data_that_never_comes_ends_the_job_after_the_retries(env, published, ingestor, sim):
    sim.state.faults.update({"data_delay_s": 60})
    (pid,) = published.make(0)
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", timeout=5)
    notify(env, published.job(pid))
    assert wait_until(lambda: published.ended(pid), timeout=20)
    job = published.job(pid)
    assert job.status == "failed" and "gave up after 3 retries" in job.error
    assert len(published.calls("json")) == 4  # the first look and three retries
    assert published.purchase(pid).tracking_number is None


def test_an_empty_page_ends_at_once_without_retries(env, published, ingestor, sim):
    (pid,) = published.make(7)
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", timeout=5)
    notify(env, published.job(pid))
    assert wait_until(lambda: published.ended(pid), timeout=10)
    assert published.job(pid).error == "no data: empty page"
    assert len(published.calls("json")) == 0  # the job holds no record: nothing to download


def test_an_existing_tracking_number_is_never_overwritten(env, published, ingestor, sim):
    (pid,) = published.make(0)
    with published.sessions() as session, session.begin():
        session.execute(
            update(Purchasing).where(Purchasing.id == pid).values(tracking_number="SET-BY-OPS")
        )
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", timeout=5)
    notify(env, published.job(pid))
    assert wait_until(lambda: published.ended(pid), timeout=10)
    purchase = published.purchase(pid)
    assert purchase.tracking_number == "SET-BY-OPS"
    assert purchase.latest_delivery_status == "輸送中"  # the other columns are still written
    assert "tracking_number_already_set" in published.job(pid).rejected


# the second is longer than INGEST_MAX_RETRIES x INGEST_RETRY_S (0.6 s): the publisher's
# settling of a lost answer takes its HTTP timeout, and the notification waits that out
@pytest.mark.parametrize("stored_after_s", [0.3, 1.5], ids=["soon", "past-its-retries"])
def test_a_notification_before_the_job_id_is_stored_waits_for_it_while_publishing(
    env, published, ingestor, sim, stored_after_s
):
    (pid,) = published.make(1)
    job = published.job(pid)
    with published.sessions() as session, session.begin():
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.id == job.id)
            .values(scraping_job_id=None, status="publishing")
        )
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", timeout=5)
    notify(env, job)
    threading.Timer(stored_after_s, lambda: _store(published, job)).start()
    assert wait_until(lambda: published.ended(pid), timeout=10)
    assert published.job(pid).status == "completed"


def test_a_notification_for_a_job_without_an_id_that_no_publisher_holds_is_dead_lettered(
    env, published, ingestor, sim, vhost
):
    (pid,) = published.make(1)
    job = published.job(pid)
    with published.sessions() as session, session.begin():
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.id == job.id)
            .values(scraping_job_id=None, status="queued")
        )
    notify(env, job)
    dead = vhost.management.wait_for_messages(
        vhost.name, "ingestor.completions.dead-letter", 1, timeout=10
    )
    reason = dead[0]["properties"]["headers"]["x-trackfill-reason"]
    assert "has no scraping job id stored yet; gave up after 3 retries" in reason


def _store(published, job) -> None:
    with published.sessions() as session, session.begin():
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.id == job.id)
            .values(scraping_job_id=job.scraping_job_id, status="pending")
        )


@pytest.mark.parametrize(
    "digits,status,completed,failed",
    [((0, 1), "completed", 2, 0), ((0, 7), "partial", 1, 1), (("97", "98"), "failed", 0, 2)],
)
def test_the_batch_ends_completed_partial_or_failed(
    env, published, ingestor, sim, digits, status, completed, failed
):
    ids = published.make(*digits)
    assert published.batch().status == "pending"
    assert wait_until(
        lambda: (
            len(sim.state.snapshot()["jobs"]) == len(ids)
            and all(
                j["status"] in ("finished", "failed", "stopped")
                for j in sim.state.snapshot()["jobs"]
            )
        ),
        timeout=5,
    )
    first = published.job(ids[0])
    notify(env, first, status="finished")
    assert wait_until(lambda: published.ended(ids[0]), timeout=10)
    assert published.batch().status == "pending"  # not every job has ended
    notify(env, published.job(ids[1]))
    assert wait_until(lambda: published.batch().status == status, timeout=10)
    batch = published.batch()
    assert (batch.completed_jobs, batch.failed_jobs) == (completed, failed)


def test_the_ingestor_process_needs_its_token_and_stops_on_sigterm(env):
    environ = {**os.environ, **env, "WEBSCRAPER_API_TOKEN": ""}
    missing = subprocess.run(
        [sys.executable, "-m", "ingestor"], env=environ, capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 2 and "WEBSCRAPER_API_TOKEN is required" in missing.stderr
    environ["WEBSCRAPER_API_TOKEN"] = SIM_TOKEN
    process = subprocess.Popen(
        [sys.executable, "-m", "ingestor"], env=environ, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "consuming ingestor.completions" in line:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
    assert SIM_TOKEN not in "".join(lines)


def test_a_429_on_a_follow_up_call_parks_until_retry_after_and_the_job_still_ends(
    env, published, ingestor, sim, vhost
):
    (pid,) = published.make(0)
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", timeout=5)
    sim.state.faults.update({"rate_limit_storm": 1, "storm_retry_after_s": 1})
    notify(env, published.job(pid))
    assert wait_until(lambda: published.ended(pid), timeout=20)
    job = published.job(pid)
    assert job.status == "completed", job.error
    assert published.purchase(pid).tracking_number is not None
    follow_ups = sim.state.snapshot()["calls"][1:]  # after the create
    assert [c["status"] for c in follow_ups] == [429, 200, 200]
    assert follow_ups[1]["t"] - follow_ups[0]["t"] >= 0.95  # after Retry-After
    assert vhost.management.get_messages(vhost.name, "ingestor.completions.dead-letter") == []


def test_one_notification_handled_by_two_replicas_at_once_is_counted_once(
    env, published, sim, db, vhost
):
    (pid,) = published.make(0)
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", timeout=5)
    job = published.job(pid)
    event = JobCompleted(
        task=TASK.name,
        scraping_job_id=job.scraping_job_id,
        status="finished",
        custom_id=job.custom_id,
        sitemap_id=TASK.sitemap_id,
    )
    envelope = new_envelope(JOB_COMPLETED, event.to_payload())
    settings = load_settings(env)
    replicas = [completion_handler(settings), completion_handler(settings)]
    with db.begin() as connection:  # whichever writes first holds its transaction a while
        connection.execute(
            text(
                "CREATE FUNCTION test_slow_fill() RETURNS trigger AS $$ "
                "BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER test_slow_fill BEFORE UPDATE ON purchasing "
                "FOR EACH ROW EXECUTE FUNCTION test_slow_fill()"
            )
        )
    start = threading.Barrier(2)
    outcomes: list = []

    def handle(handler) -> None:
        with connect(env["AMQP_URL"]) as connection:
            delivery = Delivery(
                envelope, event, {}, INGESTOR_COMPLETIONS, True, MessagePublisher(connection)
            )
            start.wait(5)
            outcomes.extend(handler([delivery]))

    try:
        threads = [threading.Thread(target=handle, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    finally:
        with db.begin() as connection:
            connection.execute(text("DROP TRIGGER IF EXISTS test_slow_fill ON purchasing"))
            connection.execute(text("DROP FUNCTION IF EXISTS test_slow_fill()"))
    assert outcomes == [None, None]  # both done, neither failed
    assert published.count(ProcessedNotification) == 1
    batch = published.batch()
    assert (batch.completed_jobs, batch.failed_jobs, batch.status) == (1, 0, "completed")
    with published.sessions() as session:
        closing = session.execute(
            select(func.count()).where(SyncLog.operation_type == "tracking_number_empty_completed")
        ).scalar_one()
    assert closing == 1
    assert published.purchase(pid).tracking_number is not None


def test_a_packed_job_fills_each_purchase_from_its_own_record_with_one_download(
    published, gateway, ingestor, sim
):
    """Ten purchases, every outcome of the simulator, in one scraping job: one
    notification, one status check, one download and one look at the problem pages."""
    digits = list(range(10))
    ids = published.make(*digits, packed=True)
    by = dict(zip(digits, ids, strict=True))
    assert len({published.job(pid).scraping_job_id for pid in ids}) == 1
    assert wait_until(lambda: published.ended(*ids), timeout=30)
    for digit in (0, 1, 2, 3, 6):
        number = published.purchase(by[digit]).tracking_number
        assert number == valid_tracking_number(rows_order(published, by[digit]))
    assert published.purchase(by[4]).latest_delivery_status == "伝票番号未登録"
    assert published.job(by[7]).error == "no data: empty page"
    assert published.job(by[8]).error == "no data: failed page"
    failed = {d for d in digits if published.job(by[d]).status == "failed"}
    assert failed == {7, 8}  # failed and empty pages fail only their own purchase
    batch = published.batch()
    assert (batch.status, batch.completed_jobs, batch.failed_jobs) == ("partial", 8, 2)
    kinds = [c["kind"] for c in sim.state.snapshot()["calls"]]
    assert kinds == ["create", "get", "json", "problematic"]
    assert published.count(ProcessedNotification) == 10  # each job marked once


def test_a_packed_job_writes_what_it_has_and_waits_for_a_record_that_is_late(
    env, published, ingestor, sim, monkeypatch
):
    ids = published.make(0, 1, 2, packed=True)
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", timeout=5)
    (job,) = sim.state.jobs.values()
    late = job.records.pop()  # one record is not there yet
    notify(env, published.job(ids[0]))
    assert wait_until(lambda: sum(published.ended(pid) for pid in ids) == 2, timeout=10)
    job.records.append(late)  # it comes
    assert wait_until(lambda: published.ended(*ids), timeout=10)
    assert all(published.job(pid).status == "completed" for pid in ids)
    assert len(published.calls("get")) == 1 and len(published.calls("json")) >= 2


def rows_order(published, pid: int) -> str:
    return published.purchase(pid).order_number
