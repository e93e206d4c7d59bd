"""Orders that live in time (docs/simulator.md): each order number draws one story, and
its Apple page at a moment shows where that story stands.

Before the handover the page shows Apple's state (``処理中``, then ``出荷準備中`` from 12-36
hours before it) and an estimate range (お届け予定日). Apple hands the parcel over about
a day before the estimate's first day, give or take a day; some orders ship up to days
after the estimate, and a few never ship (half of those show ``キャンセル済み`` from some
day on, the others ``処理中`` for ever). From
the handover the page shows the number; the carrier reads ``伝票番号未登録`` for a few
hours, then ``輸送中``, ``配達中`` on the morning of delivery, ``配達完了`` after it.

The story is a pure function of the order number, the model's seed and its origin (the
moment the simulated clock starts), so a test or a bench replays it exactly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import asdict, dataclass

from webscraper_sim.scenarios import (
    TOKYO,
    YAMATO,
    PageResult,
    apple_page,
    hyphenated,
    valid_tracking_number,
)

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class OrderModel:
    """The parameters of every story (all printed by whatever uses them)."""

    seed: int = 0
    #: orders are placed within this many days before the origin (uniform)
    placed_within_days: float = 3.0
    #: Apple's estimate begins this many days after the order: (share, low, high) bands,
    #: uniform within each (half within 3 days, a fifth beyond 10)
    estimate_lead_days: tuple[tuple[float, float, float], ...] = (
        (0.5, 1.0, 3.0),
        (0.3, 3.0, 10.0),
        (0.2, 10.0, 21.0),
    )
    #: the estimate's range, in days after its first day (uniform, whole days)
    estimate_width_days: tuple[int, int] = (0, 2)
    #: Apple hands over this many days before the estimate's first day (normal: mean, sd)
    ship_before_days: tuple[float, float] = (1.0, 1.0)
    #: the share that ships late: up to this many days after the estimate's last day
    late_share: float = 0.10
    late_days: float = 3.0
    #: the share that never ships; of those, the share Apple marks ``キャンセル済み``
    #: (the others read ``処理中`` for ever)
    never_share: float = 0.05
    cancelled_of_never: float = 0.5
    #: ``出荷準備中`` shows for this long before the handover (uniform)
    preparing_hours: tuple[float, float] = (12.0, 36.0)
    #: the carrier reads ``伝票番号未登録`` this long after the handover (uniform)
    unregistered_hours: tuple[float, float] = (2.0, 6.0)
    #: from the handover to the delivery (uniform)
    transit_hours: tuple[float, float] = (24.0, 48.0)
    #: the carrier's rounds: ``配達中`` from the first hour on the day of delivery, which
    #: comes 1-12 hours later (a parcel arriving after the last hour waits for the next day)
    rounds_hours: tuple[int, int] = (8, 20)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())

    def lead(self, draw: random.Random) -> dt.timedelta:
        pick, total = draw.random(), 0.0
        for share, low, high in self.estimate_lead_days:
            total += share
            if pick < total:
                return DAY * draw.uniform(low, high)
        _, low, high = self.estimate_lead_days[-1]
        return DAY * draw.uniform(low, high)


@dataclass(frozen=True)
class Story:
    order_number: str
    placed_at: dt.datetime
    estimate: tuple[dt.date, dt.date]
    #: ``出荷準備中`` from then (None: it never ships)
    preparing_at: dt.datetime | None
    #: the handover (None: it never ships)
    handover_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    registered_at: dt.datetime | None
    out_for_delivery_at: dt.datetime | None
    delivered_at: dt.datetime | None

    @property
    def tracking_number(self) -> str:
        return valid_tracking_number(self.order_number)


def story_of(order_number: str, model: OrderModel, origin: dt.datetime) -> Story:
    """The one story of ``order_number`` under ``model``, for a clock started at ``origin``."""
    digest = hashlib.sha256(f"{model.seed}:{order_number}".encode()).digest()
    draw = random.Random(int.from_bytes(digest[:8], "big"))
    placed = origin - DAY * draw.uniform(0, model.placed_within_days)
    first_day = (placed + model.lead(draw)).astimezone(TOKYO).date()
    estimate = (first_day, first_day + DAY * draw.randint(*model.estimate_width_days))
    if draw.random() < model.never_share:
        cancelled = None
        if draw.random() < model.cancelled_of_never:
            cancelled = placed + DAY * draw.uniform(0.5, 10)
        return Story(order_number, placed, estimate, None, None, cancelled, None, None, None)
    if draw.random() < model.late_share:
        last = dt.datetime.combine(estimate[1], dt.time(), TOKYO)
        handover = last + DAY * draw.uniform(0, model.late_days)
    else:
        start = dt.datetime.combine(first_day, dt.time(), TOKYO)
        handover = start - DAY * draw.gauss(*model.ship_before_days)
    handover = max(handover, placed + HOUR)
    preparing = max(handover - HOUR * draw.uniform(*model.preparing_hours), placed)
    registered = handover + HOUR * draw.uniform(*model.unregistered_hours)
    arrives = (handover + HOUR * draw.uniform(*model.transit_hours)).astimezone(TOKYO)
    day = arrives.date() + DAY * (arrives.hour >= model.rounds_hours[1])
    morning = dt.datetime.combine(day, dt.time(model.rounds_hours[0]), TOKYO)
    delivered = max(morning + HOUR * draw.uniform(1, 12), registered + HOUR)
    out = min(max(morning, registered), delivered)
    return Story(
        order_number, placed, estimate, preparing, handover, None, registered, out, delivered
    )


def page_at(story: Story, at: dt.datetime) -> PageResult:
    """The Apple order page of ``story`` at ``at``."""
    estimate = f"{story.estimate[0]:%Y/%m/%d} - {story.estimate[1]:%Y/%m/%d}"
    if story.cancelled_at is not None and at >= story.cancelled_at:
        return apple_page(None, "キャンセル済み", None, "-")
    if story.handover_at is None or at < story.handover_at:
        preparing = story.preparing_at is not None and at >= story.preparing_at
        state = "出荷準備中" if preparing else "処理中"
        return apple_page(None, state, None, estimate)
    number = hyphenated(story.tracking_number)
    assert story.registered_at and story.out_for_delivery_at and story.delivered_at
    if at >= story.delivered_at:
        return apple_page(number, "配達完了", YAMATO, "-")
    if at >= story.out_for_delivery_at:
        return apple_page(number, "配達中", YAMATO, estimate)
    status = "輸送中" if at >= story.registered_at else "伝票番号未登録"
    return apple_page(number, status, YAMATO, estimate)
