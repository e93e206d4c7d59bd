"""The refresh task (docs/refresh.md) on real PostgreSQL and RabbitMQ: its selection,
its batches and messages, and a packed refresh job from the publisher to the ingestor
against the simulator's Japan Post sitemap."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading

import pytest
from sqlalchemy import func, select, update

from demo.stack import free_port
from ingestor.__main__ import build as build_ingestor
from publisher.__main__ import build as build_publisher
from selector.refresh import choose_due, due_query, wait_sql
from selector.service import Selector
from shared.db.batches import NewJob, create_batch
from shared.db.models import PurchaseCheck, Purchasing, SyncLog, TrackingBatch, TrackingJob
from shared.db.session import make_session_factory, transaction
from shared.domain.japan_post import numbers_in
from shared.domain.schedule import refresh_wait_s
from shared.domain.statuses import StatusCode, code_of
from shared.messaging.publishing import MessagePublisher, connect
from shared.messaging.topology import declare_topology
from shared.settings import load_settings
from shared.tasks import JAPAN_POST_TRACKING_10 as REFRESH
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as NUMBER_TASK
from tests.integration.test_selector import drain
from tests.support import rows
from tests.support.env import services_env
from tests.support.waiting import wait_until
from webhook_gateway.__main__ import build as build_gateway
from webscraper_sim.scenarios import JAPAN_POST_STATUSES, UNKNOWN_NUMBER, japan_post_number
from webscraper_sim.state import JAPAN_POST_SITEMAP

pytestmark = pytest.mark.integration
JP = "JP LOGISTICS GROUP CO., LTD."
WEBHOOK_TOKEN = "refresh-test-webhook-token-0123456789"
PATH = "/api/acquisition/webscraper/webscraper-tracking/"
_serials = iter(range(1, 10**6))


def number(outcome: int = 0) -> str:
    return japan_post_number(next(_serials), outcome)


@pytest.fixture
def env(database_url, vhost, sim) -> dict[str, str]:
    return services_env(
        database_url,
        vhost.amqp_url,
        sim.api_url,
        WEBHOOK_TOKEN=WEBHOOK_TOKEN,
        JAPAN_POST_SITEMAP_ID=str(JAPAN_POST_SITEMAP),
        REFRESH_INTERVAL_S="3600",
        SELECTOR_MAX_RECORDS="20",
        PUBLISH_MIN_INTERVAL_S="0",
        INGEST_RETRY_S="0.2",
        INGEST_MAX_RETRIES="3",
    )


@pytest.fixture
def settings(env):
    return load_settings(env)


@pytest.fixture
def sessions(db):
    return make_session_factory(db)


@pytest.fixture
def acct(db) -> int:
    return rows.account(db)


def shipped(db, acct, *tracking_number: str, order: str | None = None, **columns) -> int:
    """A purchase the refresh task is due to look at, unless ``columns`` say otherwise."""
    values = {
        "tracking_number": tracking_number[0] if tracking_number else number(),
        "shipping_method": JP,
        "latest_delivery_status": "引受",
        **columns,
    }
    return rows.purchase(db, acct, order, **values)


def refresh_pass(settings, sessions, vhost):
    """One pass of the refresh task, publishing into the test's vhost."""
    connection = connect(vhost.amqp_url)
    declare_topology(connection)
    try:
        return Selector(settings, sessions, MessagePublisher(connection), REFRESH).run_pass()
    finally:
        connection.release()


def due(sessions, settings, limit: int = 100) -> list[int]:
    with sessions() as session:
        candidates, skipped = choose_due(session, settings.schedule, limit)
    assert skipped == []
    return [c.match.purchasing_id for c in candidates]


def test_selects_a_shipped_japan_post_purchase_whose_status_is_not_done(
    db, sessions, settings, acct
):
    pid = shipped(db, acct)
    assert due(sessions, settings) == [pid]


@pytest.mark.parametrize(
    "columns",
    [
        pytest.param({"order": "X0000000001"}, id="order-not-W"),
        pytest.param({"shipping_method": "YAMATO TRANSPORT CO.,LTD."}, id="carrier-yamato"),
        pytest.param({"shipping_method": "SAGAWA EXPRESS"}, id="carrier-sagawa"),
        pytest.param({"shipping_method": None}, id="no-carrier"),
        pytest.param({"tracking_number": "123456789012"}, id="wrong-check-digit"),
        pytest.param({"tracking_number": "13112383852"}, id="11-digit-number"),
        pytest.param({"tracking_number": "EJ123456785JP"}, id="international-number"),
        pytest.param({"tracking_number": ""}, id="empty-number"),
        pytest.param({"tracking_number": None}, id="no-number"),
        pytest.param({"latest_delivery_status": "お届け先にお届け済み"}, id="delivered"),
        pytest.param({"latest_delivery_status": "窓口でお渡し"}, id="handed-over"),
        pytest.param({"latest_delivery_status": "差出人に返送済み"}, id="returned"),
        pytest.param({"latest_delivery_status": "配達完了"}, id="seed-done"),
    ],
)
def test_leaves_out_a_purchase_that_fails_one_clause(db, sessions, settings, acct, columns):
    beside = shipped(db, acct)  # a due one beside it: the query does select
    assert due(sessions, settings) == [beside]
    shipped(db, acct, **columns)
    assert due(sessions, settings) == [beside]


def test_accepts_a_number_printed_with_hyphens_or_full_width_and_japan_post_by_name(
    db, sessions, settings, acct
):
    digits = number()
    hyphens = shipped(db, acct, f"{digits[:4]}-{digits[4:8]}-{digits[8:]}")
    wide = shipped(
        db,
        acct,
        number().translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        shipping_method="日本郵便 ゆうパック",
    )
    never_checked = shipped(db, acct, latest_delivery_status=None)
    assert due(sessions, settings) == [hyphens, wide, never_checked]


def test_a_purchase_checked_within_the_interval_waits_and_one_checked_before_is_due_first(
    db, sessions, settings, acct
):
    now = dt.datetime.now(dt.UTC)
    recent = shipped(db, acct, delivery_status_checked_at=now - dt.timedelta(seconds=600))
    old = shipped(db, acct, delivery_status_checked_at=now - dt.timedelta(hours=2))
    older = shipped(db, acct, delivery_status_checked_at=now - dt.timedelta(hours=5))
    never = shipped(db, acct)
    chosen = due(sessions, settings)
    assert recent not in chosen
    assert chosen == [never, older, old]  # never checked first, then the oldest check


def test_a_purchase_with_a_job_in_flight_or_refreshed_within_the_interval_is_not_selected(
    db, sessions, settings, acct
):
    in_flight, failed_lately, free = shipped(db, acct), shipped(db, acct), shipped(db, acct)
    with transaction(sessions) as session:
        create_batch(session, NUMBER_TASK, [NewJob(in_flight, "W1", "https://x/vieworder/W1/a")])
        jobs = create_batch(session, REFRESH, [NewJob(failed_lately, "W2", "https://y/")])
        session.execute(
            update(TrackingJob).where(TrackingJob.id == jobs[0].id).values(status="failed")
        )
    assert due(sessions, settings) == [free]


def test_groups_ten_distinct_numbers_a_page_and_two_purchases_of_one_number_share_it(
    db, sessions, settings, acct
):
    twice = number()
    ids = [shipped(db, acct, twice), shipped(db, acct, twice)]
    ids += [shipped(db, acct) for _ in range(23)]
    with sessions() as session:
        candidates, _ = choose_due(session, settings.schedule, 100)
    pages = list(dict.fromkeys(c.url for c in candidates))
    assert [len(numbers_in(url)) for url in pages] == [10, 10, 4]
    assert [c.match.purchasing_id for c in candidates] == ids
    assert candidates[0].url == candidates[1].url
    numbers = {c.match.purchasing_id: c.match.tracking_number for c in candidates}
    for candidate in candidates:
        assert numbers[candidate.match.purchasing_id] in numbers_in(candidate.url)


def checked(db, acct, status: str, hours_ago: float) -> int:
    """A parcel whose status ``status`` was read ``hours_ago``."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    code = code_of(status)
    return shipped(
        db, acct, latest_delivery_status=status, delivery_status_code=code,
        delivery_status_checked_at=at,
    )  # fmt: skip


def test_each_status_code_waits_its_own_time_out_for_delivery_soonest_held_parcels_longest(
    db, sessions, settings, acct
):
    # REFRESH_INTERVAL_S 1 h: out for delivery 20 min, in transit 1 h, pending 2 h,
    # held 4 h (shared/domain/schedule.py's table)
    out = checked(db, acct, "持ち出し中", 0.5)
    moving, moving_lately = checked(db, acct, "通過", 1.5), checked(db, acct, "通過", 0.5)
    pending, pending_lately = checked(db, acct, "引受", 2.5), checked(db, acct, "引受", 1.5)
    held, held_lately = checked(db, acct, "保管", 4.5), checked(db, acct, "保管", 3.5)
    with sessions() as session:
        rows = session.execute(due_query(settings.schedule, 100)).all()
    assert {row.id for row in rows} == {held, pending, moving, out}
    assert {moving_lately, pending_lately, held_lately}.isdisjoint(row.id for row in rows)


def test_the_selections_waits_are_the_schedules_for_every_code(db, settings):
    with db.connect() as connection:
        for code in [*StatusCode, None]:
            wait = wait_sql(settings.schedule)
            found = connection.execute(
                select(func.extract("epoch", wait))
                .select_from(Purchasing)
                .where(Purchasing.id == shipped(db, rows.account(db), delivery_status_code=code))
            ).scalar_one()
            assert float(found) == refresh_wait_s(code, settings.schedule), code


def test_a_page_with_room_takes_the_moving_parcels_whose_next_look_is_soonest(
    db, sessions, settings, acct
):
    due_now = [checked(db, acct, "通過", 2) for _ in range(3)]
    # not due yet, each read over SCHEDULE_MIN_S (15 min) ago: the sooner due ride first
    soon = [checked(db, acct, "通過", 0.9 - n * 0.05) for n in range(7)]
    later = [checked(db, acct, "通過", 0.3) for _ in range(3)]
    read_just_now = checked(db, acct, "持ち出し中", 0.1)  # within SCHEDULE_MIN_S
    waiting = checked(db, acct, "引受", 1)  # pending: not moving, does not ride
    with sessions() as session:
        candidates, _ = choose_due(session, settings.schedule, 100)
    assert [c.match.purchasing_id for c in candidates] == due_now + soon
    assert len({c.url for c in candidates}) == 1 and len(numbers_in(candidates[0].url)) == 10
    assert {*later, read_just_now, waiting}.isdisjoint(c.match.purchasing_id for c in candidates)


def test_no_page_leaves_for_ride_alongs_alone(db, sessions, settings, acct):
    for _ in range(5):
        checked(db, acct, "通過", 0.5)
    assert due(sessions, settings) == []


def test_a_pass_of_the_refresh_task_records_its_batch_custom_ids_and_sync_log(
    db, sessions, settings, vhost, acct
):
    ids = [shipped(db, acct) for _ in range(12)]
    result = refresh_pass(settings, sessions, vhost)
    assert result.dispatched == 12
    with sessions() as session:
        batch = session.execute(select(TrackingBatch)).scalar_one()
        jobs = session.execute(select(TrackingJob).order_by(TrackingJob.index)).scalars().all()
        operations = session.execute(select(SyncLog.operation_type)).scalars().all()
    assert batch.task_name == REFRESH.name
    assert batch.file_path == f"purchasing_query_japan_post_tracking_10_{batch.batch_uuid.hex[:8]}"
    assert [job.custom_id for job in jobs] == [
        f"jpt10-{batch.batch_uuid.hex[:8]}-{i:04d}" for i in range(12)
    ]
    assert [job.purchasing_id for job in jobs] == ids
    assert len({job.target_url for job in jobs}) == 2
    assert operations == ["japan_post_tracking_10_triggered"]
    messages = drain(vhost)
    assert {method.routing_key for method, _, _ in messages} == {REFRESH.name}
    assert {body["task"] for _, _, body in messages} == {REFRESH.name}


def test_the_tracking_number_pass_still_selects_only_purchases_without_a_number(
    db, sessions, settings, acct
):
    shipped(db, acct)
    waiting = rows.purchase(db, acct, tracking_number=None)
    assert [c.match.purchasing_id for c in Selector(settings, sessions, None).preview()[0]] == [
        waiting
    ]


# -- a packed refresh job through the publisher, the simulator, the gateway and the ingestor


@contextlib.contextmanager
def running(env):
    """The publisher, the gateway and the ingestor, in threads, on ``env``."""
    settings = load_settings(env)
    stop = threading.Event()
    loops = [build_publisher(settings, stop), build_ingestor(settings, stop)]
    threads = [threading.Thread(target=loop.run, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    for loop in loops:
        assert loop.ready.wait(15)
    port = free_port()
    gateway_settings = load_settings({**env, "GATEWAY_BIND": f"127.0.0.1:{port}"})
    server, publishers = build_gateway(gateway_settings)
    gateway = threading.Thread(target=server.run, daemon=True)
    gateway.start()
    try:
        yield f"http://127.0.0.1:{port}{PATH}?token={WEBHOOK_TOKEN}"
    finally:
        server.close()
        publishers.close()
        stop.set()
        for thread in threads:
            thread.join(15)


def test_a_packed_refresh_job_updates_each_purchase_from_its_own_record_and_never_a_number(
    db, sessions, settings, env, sim, vhost, acct
):
    outcomes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]  # 13 purchases: two pages
    numbers = [number(outcome) for outcome in outcomes]
    printed = [f"{n[:4]}-{n[4:8]}-{n[8:]}" for n in numbers]  # kept as the purchase had it
    ids = [shipped(db, acct, p) for p in printed]
    with running(env) as webhook:
        sim.state.config.webhook_url = webhook
        refresh_pass(settings, sessions, vhost)
        wait_until(lambda: all(job_status(sessions, pid) == "completed" for pid in ids), 30)
        sim.state.config.webhook_url = None
    creates = [c for c in sim.state.snapshot()["calls"] if c["kind"] == "create"]
    assert len(creates) == 1  # both pages in one scraping job
    state = sim.state.snapshot()
    assert [len(job["start_urls"]) for job in state["jobs"]] == [2]
    assert state["jobs"][0]["sitemap_id"] == JAPAN_POST_SITEMAP
    for pid, outcome, shown in zip(ids, outcomes, printed, strict=True):
        purchase = get_purchase(sessions, pid)
        status = JAPAN_POST_STATUSES[str(outcome)]
        assert purchase.latest_delivery_status == status
        assert purchase.delivery_status_code == code_of(status)
        assert purchase.tracking_number == shown  # never written
        assert purchase.delivery_status_checked_at is not None
    with sessions() as session:
        assert session.execute(select(PurchaseCheck)).first() is None  # no re-check rows
        completed = (
            session.execute(
                select(SyncLog.operation_type).where(SyncLog.operation_type.like("%_completed"))
            )
            .scalars()
            .all()
        )
    assert completed == ["japan_post_tracking_10_completed"]
    # an unknown number is a status like any other: pending, checked again later
    unknown = ids[outcomes.index(5)]
    assert get_purchase(sessions, unknown).latest_delivery_status == UNKNOWN_NUMBER
    assert get_purchase(sessions, unknown).delivery_status_code == "pending"
    # done ones leave the selection; the rest are due again after the interval
    later = load_settings({**env, "REFRESH_INTERVAL_S": "0.001", "SCHEDULE_MIN_S": "0.001"})
    with sessions() as session:
        session.execute(
            update(TrackingJob).values(created_at=TrackingJob.created_at - dt.timedelta(hours=1))
        )
        session.commit()
    again = set(due(sessions, later))
    done = {pid for pid, o in zip(ids, outcomes, strict=True) if o in (2, 4, 9)}
    assert again == set(ids) - done


def job_status(sessions, purchasing_id: int) -> str | None:
    with sessions() as session:
        return session.execute(
            select(TrackingJob.status).where(TrackingJob.purchasing_id == purchasing_id)
        ).scalar_one_or_none()


def get_purchase(sessions, purchasing_id: int) -> Purchasing:
    with sessions() as session:
        return session.get(Purchasing, purchasing_id)


def test_a_refresh_job_whose_page_lacks_a_number_fails_it_alone(
    db, sessions, settings, env, sim, vhost, acct
):
    """A record per number, matched within its URL: a purchase whose number is on
    another page's record, not its own, gets no status from it."""
    first, second = number(0), number(1)
    mine = shipped(db, acct, first)
    with transaction(sessions) as session:
        # the job's URL asks for the other number only: its record is not this purchase's
        url = f"https://trackings.post.japanpost.jp/services/srv/search/?requestNo1={second}"
        create_batch(session, REFRESH, [NewJob(mine, "W", url + "&search=%E8%BF%BD")])
    with running({**env, "INGEST_MAX_RETRIES": "1"}) as webhook:
        sim.state.config.webhook_url = webhook
        refresh_pass(settings, sessions, vhost)
        wait_until(lambda: job_status(sessions, mine) == "failed", 30)
        sim.state.config.webhook_url = None
    purchase = get_purchase(sessions, mine)
    assert purchase.latest_delivery_status == "引受"  # as it was
    assert purchase.delivery_status_checked_at is None
    with sessions() as session:
        error = session.execute(select(TrackingJob.error)).scalar_one()
    assert "no record" in error


def test_a_manual_request_for_the_refresh_task_is_refused_with_its_reason(db, sessions, acct):
    from publisher.jobs import CandidateJobs
    from shared.contracts import CandidateFound
    from shared.messaging.consuming import Reject

    pid = shipped(db, acct)
    message = CandidateFound(task=REFRESH.name, purchasing_id=pid)
    with pytest.raises(Reject, match="a manual request is for a tracking-number task"):
        CandidateJobs(sessions).resolve(message, REFRESH, "message-1")
    with sessions() as session:
        assert session.execute(select(TrackingJob)).first() is None
