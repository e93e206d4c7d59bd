# ruff: noqa: F811 - the fixtures imported from test_refresh are used by name
"""The Yamato refresh (docs/refresh.md) and the tracking.updated events (docs/events.md)
on real PostgreSQL and RabbitMQ against the simulator: its selection by the schedule,
a look through Apple's order page from the selector to the ingestor, the record whose
number differs, and one event per change relayed from the outbox."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import literal, select, update
from sqlalchemy.types import Date, DateTime, String

from ingestor.relay import OutboxRelay
from selector.service import Selector
from selector.yamato import choose_yamato_due, next_look_sql
from shared.db.models import Purchasing, TrackingJob, TrackingUpdateOutbox
from shared.db.session import make_session_factory
from shared.domain.schedule import Schedule, yamato_next_look
from shared.domain.statuses import StatusCode
from shared.messaging.publishing import MessagePublisher, connect
from shared.messaging.topology import DOWNSTREAM_TRACKING_UPDATED, declare_topology
from shared.tasks import YAMATO_STATUS_REFRESH as YAMATO
from tests.integration.test_refresh import (  # noqa: F401 - fixtures used by name
    acct,
    env,
    get_purchase,
    job_status,
    running,
    sessions,
    settings,
)
from tests.support import rows
from tests.support.rabbit import payload_json
from tests.support.waiting import wait_until
from webscraper_sim.scenarios import YAMATO as YAMATO_METHOD
from webscraper_sim.scenarios import valid_tracking_number

pytestmark = pytest.mark.integration

TOKYO = dt.timezone(dt.timedelta(hours=9))


def shipped(db, acct, digit: int = 0, number: str | None = None, **columns) -> int:
    """A Yamato purchase whose Apple page is the simulator's scenario ``digit``, filled
    with the number that page shows (unless ``number``), never looked at since."""
    order = rows.order_number(digit)
    values = {
        "tracking_number": number or valid_tracking_number(order),
        "shipping_method": YAMATO_METHOD,
        "latest_delivery_status": "輸送中",
        "delivery_status_code": "in_transit",
        **columns,
    }
    return rows.purchase(db, acct, order, **values)


def due(sessions, settings, limit: int = 100) -> list[int]:
    with sessions() as session:
        candidates, skipped = choose_yamato_due(session, settings.schedule, limit)
    assert skipped == []
    return [c.match.purchasing_id for c in candidates]


def checked(db, purchasing_id: int, ago: dt.timedelta) -> None:
    """The purchase's status was read ``ago`` ago, and its refresh jobs began then."""
    with db.begin() as connection:
        at = select(literal(dt.datetime.now(dt.UTC) - ago)).scalar_subquery()
        connection.execute(
            update(Purchasing)
            .where(Purchasing.id == purchasing_id)
            .values(delivery_status_checked_at=at)
        )
        connection.execute(
            update(TrackingJob)
            .where(TrackingJob.purchasing_id == purchasing_id)
            .values(created_at=at)
        )


# -- the selection


def test_selects_a_shipped_yamato_purchase_never_looked_at(db, sessions, settings, acct):
    pid = shipped(db, acct)
    assert due(sessions, settings) == [pid]


@pytest.mark.parametrize(
    "columns",
    [
        pytest.param({"order": "X0000000001"}, id="order-not-W"),
        pytest.param({"shipping_method": "JP LOGISTICS GROUP CO., LTD."}, id="carrier-jp"),
        pytest.param({"tracking_number": "123456789012"}, id="bad-check-digit"),
        pytest.param({"tracking_number": None}, id="no-number"),
        pytest.param(
            {"latest_delivery_status": "配達完了", "delivery_status_code": "delivered"},
            id="delivered",
        ),
        pytest.param({"official_account_id": None}, id="no-account"),
    ],
)
def test_leaves_out_a_purchase_that_fails_one_clause(db, sessions, settings, acct, columns):
    order = columns.pop("order", None)
    if order:
        rows.purchase(db, acct, order, tracking_number="444413758703", shipping_method="YAMATO")
    else:
        shipped(db, acct, **columns)
    assert due(sessions, settings) == []


def test_a_parcel_looked_at_today_waits_and_one_looked_at_before_its_estimate_is_due(
    db, sessions, settings, acct
):
    today = dt.datetime.now(TOKYO).date()
    waits = shipped(db, acct)
    checked(db, waits, dt.timedelta(minutes=1))  # the next day look is ahead
    past = shipped(db, acct, estimated_delivery_from=today - dt.timedelta(days=3))
    checked(db, past, dt.timedelta(days=2))  # a day look has passed since
    far = shipped(db, acct, estimated_delivery_from=today + dt.timedelta(days=5))
    checked(db, far, dt.timedelta(days=2))  # its estimate is days ahead: not yet
    out = shipped(
        db, acct, latest_delivery_status="配達中", delivery_status_code="out_for_delivery"
    )
    checked(db, out, dt.timedelta(hours=6))  # five hours after 配達中
    assert due(sessions, settings) == [out, past] or due(sessions, settings) == [past, out]


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC)


@given(
    last_at=st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2027, 12, 31)).map(_aware),
    code=st.sampled_from([None, *StatusCode]),
    first_day=st.none() | st.dates(dt.date(2025, 12, 1), dt.date(2028, 1, 31)),
)
@hypothesis_settings(max_examples=150, deadline=None)
def test_the_selections_next_look_is_the_schedules(engine, last_at, code, first_day):
    schedule = Schedule()
    expression = next_look_sql(
        literal(last_at, DateTime(timezone=True)),
        literal(code.value if code else None, String()),
        literal(first_day, Date()),
        schedule,
    )
    with engine.connect() as connection:  # reads only: nothing to empty between inputs
        in_sql = connection.execute(select(expression)).scalar_one()
    assert in_sql == yamato_next_look(last_at, code, first_day, schedule)


# -- a look through the Apple page, and its events


@contextlib.contextmanager
def relaying(env, db):
    """The outbox relay in a thread, as the ingestor runs it."""
    stop = threading.Event()
    connection = connect(env["AMQP_URL"])
    relay = OutboxRelay(make_session_factory(db), MessagePublisher(connection))
    thread = threading.Thread(target=relay.run, args=(stop, 0.05), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        connection.release()


def yamato_pass(settings, sessions, vhost):
    connection = connect(vhost.amqp_url)
    declare_topology(connection)
    try:
        return Selector(settings, sessions, MessagePublisher(connection), YAMATO).run_pass()
    finally:
        connection.release()


def look(env, settings, sessions, vhost, sim, db, ids: list[int]) -> None:
    """One Yamato pass, its jobs scraped, notified, ingested and their events relayed."""
    with running(env) as webhook, relaying(env, db):
        sim.state.config.webhook_url = webhook
        yamato_pass(settings, sessions, vhost)
        assert wait_until(lambda: all(job_status_last(sessions, p) for p in ids), 30)
        assert wait_until(lambda: waiting_events(sessions) == 0, 10)
        sim.state.config.webhook_url = None


def job_status_last(sessions, purchasing_id: int) -> bool:
    with sessions() as session:
        statuses = session.execute(
            select(TrackingJob.status).where(TrackingJob.purchasing_id == purchasing_id)
        ).scalars()
        return all(s in ("completed", "failed") for s in statuses)


def waiting_events(sessions) -> int:
    with sessions() as session:
        return len(
            session.execute(
                select(TrackingUpdateOutbox.id).where(TrackingUpdateOutbox.relayed_at.is_(None))
            ).all()
        )


def events(vhost) -> list[dict]:
    """Every tracking.updated event in the downstream queue (left there)."""
    messages = vhost.management.get_messages(vhost.name, DOWNSTREAM_TRACKING_UPDATED, 1000)
    return [payload_json(m) for m in messages]


def test_a_yamato_parcel_is_refreshed_through_the_apple_page_until_delivered_then_never(
    db, sessions, settings, env, sim, vhost, acct
):
    moving = shipped(db, acct, 2)  # the page: 配達中, an estimate with its year
    delivered = shipped(db, acct, 6)  # the page: 配達完了（宅配ボックス）
    number = get_purchase(sessions, moving).tracking_number
    look(env, settings, sessions, vhost, sim, db, [moving, delivered])
    state = sim.state.snapshot()
    assert {job["sitemap_id"] for job in state["jobs"]} == {YAMATO.sitemap_id}
    assert all(
        "store.apple.com/go/jp/vieworder/" in u for j in state["jobs"] for u in j["start_urls"]
    )
    out = get_purchase(sessions, moving)
    assert (out.latest_delivery_status, out.delivery_status_code) == ("配達中", "out_for_delivery")
    assert out.estimated_delivery_date is not None
    assert out.tracking_number == number  # never written
    done = get_purchase(sessions, delivered)
    assert (done.latest_delivery_status, done.delivery_status_code) == (
        "配達完了(宅配ボックス)",  # normalised (NFKC)
        "delivered",
    )
    assert job_status(sessions, delivered) == "completed"
    # days later: the one out for delivery is due again, the delivered one never
    checked(db, moving, dt.timedelta(days=3))
    checked(db, delivered, dt.timedelta(days=3))
    assert due(sessions, settings) == [moving]
    told = events(vhost)
    assert sorted(e["purchasing_id"] for e in told) == sorted([moving, delivered])
    by_id = {e["purchasing_id"]: e for e in told}
    assert by_id[delivered]["changes"]["delivery_status_code"] == {
        "old": "in_transit",
        "new": "delivered",
    }
    assert "tracking_number" not in by_id[moving]["changes"]
    assert by_id[moving]["task"] == YAMATO.name and by_id[moving]["schema"] == "tracking.updated/1"
    assert by_id[moving]["scrapingjob_id"] == state["jobs"][0]["id"]
    assert all("@" not in str(e) and "token" not in str(e) for e in told)


def test_a_page_showing_another_number_writes_nothing_and_says_so_masked(
    db, sessions, settings, env, sim, vhost, acct
):
    stored = "444413758703"  # valid, not the number the page shows
    pid = shipped(db, acct, 2, number=stored)
    shown = valid_tracking_number(get_purchase(sessions, pid).order_number)
    look(env, settings, sessions, vhost, sim, db, [pid])
    purchase = get_purchase(sessions, pid)
    assert (purchase.tracking_number, purchase.latest_delivery_status) == (stored, "輸送中")
    assert purchase.estimated_delivery_date is None
    with sessions() as session:
        job = session.execute(select(TrackingJob)).scalar_one()
    reason = job.rejected["tracking_number_differs"]
    assert f"********{shown[-4:]}" in reason and "********8703" in reason
    assert stored not in reason and shown not in reason
    assert events(vhost) == []  # nothing changed: nothing told


def test_a_look_that_changes_nothing_tells_nothing(db, sessions, settings, env, sim, vhost, acct):
    pid = shipped(db, acct, 2)
    look(env, settings, sessions, vhost, sim, db, [pid])
    assert len(events(vhost)) == 1
    checked(db, pid, dt.timedelta(hours=6))
    look(env, settings, sessions, vhost, sim, db, [pid])  # the same page again
    with sessions() as session:
        assert len(session.execute(select(TrackingJob)).all()) == 2  # looked at twice
        assert len(session.execute(select(TrackingUpdateOutbox)).all()) == 1
    assert len(events(vhost)) == 1
