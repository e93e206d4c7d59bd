"""End to end with orders living in time (webscraper_sim/orders.py): the simulator's
clock runs 3,600 times faster than the wall clock (a simulated hour a second), and the
four services (the selector as its daemon) run with the schedule's waits compressed
alike. Each purchase is filled only once its order has shipped, none is looked at again
before the time its schedule set, one cancelled is never looked at again; each shipped
one is then followed by the Yamato refresh through its Apple page until ``delivered`` is
in its row (after the delivery, on the simulator's clock), and never looked at after
that; and the page credits the simulator billed are the ones trackfill recorded.

Compression leaves one thing out: Apple's estimate is a calendar date, which cannot be
compressed, so here every estimate looks far to the schedule and its waits are capped by
the (compressed) ``SCHEDULE_FAR_S``; what the estimate saves is measured by
``bench/credits.py`` on a simulated clock instead.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from demo.stack import Timings, start_stack
from shared.db.models import (
    OfficialAccount,
    PurchaseCheck,
    Purchasing,
    ScrapingJobCost,
    TrackingJob,
)
from shared.db.session import make_session_factory
from shared.db.statuses import IN_FLIGHT
from tests.support.waiting import wait_until
from webscraper_sim.orders import OrderModel, story_of

pytestmark = pytest.mark.integration
SPEED = 3600.0
EMAIL = "living.buyer@example.com"
#: the schedule's waits a simulated hour to the second: 15 min -> 0.25 s, 1 day -> 24 s,
#: and the estimate's far wait held to 3 s (it never comes near here: see the docstring)
SCHEDULE = {
    "SCHEDULE_MIN_S": "0.25",
    "SCHEDULE_FAR_S": "3",
    "SCHEDULE_LIKELY_S": "3",
    "SCHEDULE_PREPARING_S": "1",
    "SCHEDULE_TRANSIT_S": "48",
    "SCHEDULE_LATE_S": "72",
    "RECHECK_BASE_S": "0.5",
    "RECHECK_MAX_S": "3",
    "SELECTOR_INTERVAL_S": "0.3",
}


def pick_orders(origin: dt.datetime) -> tuple[list[str], str]:
    """Eight orders handed over 2-14 simulated hours after ``origin`` (2-14 s here), and
    one already cancelled."""
    model = OrderModel(seed=0)
    shipping, cancelled = [], None
    for n in range(1_000_000_000, 1_000_020_000):
        order = f"W{n}"
        story = story_of(order, model, origin)
        handover = story.handover_at
        soon = handover and dt.timedelta(hours=2) < handover - origin < dt.timedelta(hours=14)
        if soon and len(shipping) < 8:
            shipping.append(order)
        elif cancelled is None and story.cancelled_at and story.cancelled_at < origin:
            cancelled = order
        if len(shipping) == 8 and cancelled:
            return shipping, cancelled
    raise AssertionError("the model gave too few such orders")


@pytest.fixture
def origin() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=3)


@pytest.fixture
def stack(database_url, vhost, db, tmp_path: Path, origin):
    running = start_stack(
        database_url,
        vhost.amqp_url,
        tmp_path / "logs",
        Timings(factor=100, sim_run_s=0.4, ingest_retry_s=0.3),
        extra_env={"LOG_FORMAT": "json", **SCHEDULE},
        sim_args=["--living-speed", f"{SPEED:g}", "--living-origin", origin.isoformat()],
    )
    running.launches["selector"] = ([sys.executable, "-m", "selector"], dict(running.env))
    yield running
    codes = running.stop()
    assert set(codes.values()) == {0}, codes


def seed(db, orders: list[str]) -> dict[str, int]:
    with db.begin() as connection:
        account = connection.execute(
            insert(OfficialAccount).values(email=EMAIL).returning(OfficialAccount.id)
        ).scalar_one()
        return {
            order: connection.execute(
                insert(Purchasing)
                .values(order_number=order, official_account_id=account)
                .returning(Purchasing.id)
            ).scalar_one()
            for order in orders
        }


class Watch:
    """Each purchase's schedule as the test saw it: (purchase, looks counted) -> the next
    look it was given; polled while the pipeline runs."""

    def __init__(self, db):
        self.sessions = make_session_factory(db)
        self.given: dict[tuple[int, int], dt.datetime | None] = {}

    def poll(self) -> None:
        with self.sessions() as session:
            for pid, attempts, at in session.execute(
                select(
                    PurchaseCheck.purchasing_id, PurchaseCheck.attempts, PurchaseCheck.next_check_at
                )
            ):
                self.given.setdefault((pid, attempts), at)

    def until(self, found: Callable[[], dict], count: int, seconds: float) -> dict:
        """Poll while ``found()`` has fewer than ``count`` entries, at most ``seconds``;
        what it has then."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(found()) < count:
            self.poll()
            time.sleep(0.05)
        return found()

    def jobs(self) -> dict[int, list[tuple[dt.datetime, dt.datetime | None]]]:
        with self.sessions() as session:
            rows = session.execute(
                select(
                    TrackingJob.purchasing_id, TrackingJob.created_at, TrackingJob.completed_at
                ).order_by(TrackingJob.created_at)
            ).all()
        found: dict[int, list] = {}
        for pid, created, completed in rows:
            found.setdefault(pid, []).append((created, completed))
        return found


def filled(db) -> dict[int, dt.datetime]:
    """The purchases filled, and when (their filling job's end)."""
    with db.connect() as connection:
        rows = connection.execute(
            select(Purchasing.id, func.max(TrackingJob.completed_at))
            .join(TrackingJob, TrackingJob.purchasing_id == Purchasing.id)
            .where(Purchasing.tracking_number.is_not(None))
            .group_by(Purchasing.id)
        ).all()
    return dict(rows)


def delivered(db) -> dict[int, dt.datetime]:
    """The purchases whose row says delivered, and when it was written."""
    with db.connect() as connection:
        rows = connection.execute(
            select(Purchasing.id, Purchasing.delivery_status_checked_at).where(
                Purchasing.delivery_status_code == "delivered"
            )
        ).all()
    return dict(rows)


def test_living_orders_are_filled_after_they_ship_on_schedule_and_billed_as_recorded(
    stack, db, origin
):
    shipping, cancelled = pick_orders(origin)
    ids = seed(db, [*shipping, cancelled])
    model = OrderModel(seed=0)
    watch = Watch(db)
    stack.restart("selector")
    fills = watch.until(lambda: filled(db), len(shipping), 60)
    assert set(fills) == {ids[o] for o in shipping}, f"filled {len(fills)} of {len(shipping)}"
    # the Yamato refresh follows them to delivered (at most ~3 simulated days: 80 s)
    seen = watch.until(lambda: delivered(db), len(shipping), 120)
    assert set(seen) == {ids[o] for o in shipping}, f"delivered {len(seen)} of {len(shipping)}"
    looks_then = {pid: len(looks) for pid, looks in watch.jobs().items()}
    time.sleep(3)  # the schedule's longest wait here (SCHEDULE_FAR_S): none is due again

    stack.processes["selector"].terminate()
    assert stack.processes["selector"].wait(15) == 0
    with db.connect() as connection:
        in_flight = select(func.count()).where(TrackingJob.status.in_(IN_FLIGHT))
        assert wait_until(lambda: connection.execute(in_flight).scalar_one() == 0, timeout=20)
    watch.poll()

    # filled only after the handover, on the simulator's clock
    for order in shipping:
        story = story_of(order, model, origin)
        seen_at = origin + (fills[ids[order]] - origin) * SPEED
        assert seen_at >= story.handover_at, order
    # never looked at again before the time its schedule gave after the look before
    jobs, checked = watch.jobs(), 0
    for pid, looks in jobs.items():
        for count, (created, _) in enumerate(looks[1:], start=1):
            given = watch.given.get((pid, count), created)
            assert given is not None and created >= given, (pid, count, created, given)
            checked += (pid, count) in watch.given
    assert checked >= len(shipping)  # most follow-up looks were seen scheduled
    # delivered only once it was, and never looked at after the look that saw it
    for order in shipping:
        story = story_of(order, model, origin)
        assert origin + (seen[ids[order]] - origin) * SPEED >= story.delivered_at, order
    assert {pid: len(jobs[pid]) for pid in looks_then} == looks_then
    # the cancelled order: one look, its status written (done: never selected again)
    assert len(jobs[ids[cancelled]]) == 1
    with db.connect() as connection:
        status = connection.execute(
            select(Purchasing.latest_delivery_status).where(Purchasing.id == ids[cancelled])
        ).scalar_one()
    assert status == "キャンセル済み"
    # the credits the simulator billed are the ones trackfill recorded
    with db.connect() as connection:
        recorded = connection.execute(select(func.sum(ScrapingJobCost.pages))).scalar_one()
    assert recorded == stack.sim_state()["billed"] > len(shipping)
