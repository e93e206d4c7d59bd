"""When a purchase is looked at next (docs/schedule.md): one pure function of what its
looks have said and the time now.

Every look costs a page credit, so a look is worth making only where the page can have
news. Before a number exists, Apple's page says when that will be: its delivery
estimate places the handover within days (Apple ships about a carrier's transit before
the estimate's first day), and its state (``出荷準備中``) within hours. After the number,
the carrier's status code says how soon the next change comes. A page that says nothing
useful gets the back-off of ``RECHECK_BASE_S`` doubling to ``RECHECK_MAX_S``.

A Yamato parcel is looked at through Apple's order page, a credit for one parcel: so
only where delivery is likely (:func:`yamato_next_look`): at ``YAMATO_HOUR`` on the first
day of Apple's estimate and on each day after it, a few hours after ``配達中``, and
at most ``SCHEDULE_FAR_S`` apart before that.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from shared.domain.statuses import DONE_CODES, Outcome, StatusCode, classify, code_of

TOKYO = dt.timezone(dt.timedelta(hours=9), "Asia/Tokyo")

#: Apple's states that mean the handover is hours away, not days
PREPARING = ("出荷準備中", "配送準備中")

#: with a number: the wait after a status of each code, in refresh intervals
#: (``REFRESH_INTERVAL_S``); the codes that are done are not looked at again
REFRESH_FACTORS: dict[StatusCode | None, float] = {
    StatusCode.OUT_FOR_DELIVERY: 1 / 3,
    StatusCode.IN_TRANSIT: 1,
    StatusCode.PENDING: 2,
    StatusCode.INFO_RECEIVED: 2,
    StatusCode.UNKNOWN: 2,
    None: 1,
    StatusCode.DELIVERY_FAILED: 4,
    StatusCode.READY_FOR_PICKUP: 4,
    StatusCode.EXCEPTION: 4,
}
#: the parcels that ride along on a Japan Post page that would leave with room: the ones
#: moving, whose next status is soonest to change
RIDE_ALONG_CODES = (StatusCode.IN_TRANSIT, StatusCode.OUT_FOR_DELIVERY)
#: the Yamato refresh's daily look, Tokyo time: a parcel out for delivery in the morning
#: is mostly delivered by then (the carrier's rounds start at 8)
YAMATO_HOUR = 13
#: the Yamato refresh's wait after ``配達中``: most such parcels are delivered within it
YAMATO_OUT_S = 18_000.0


@dataclass(frozen=True)
class Looks:
    """What a purchase's looks have said, the latest one included."""

    #: when its looks began (its first one), and its latest one
    first_at: dt.datetime
    last_at: dt.datetime
    #: how many looks, the latest included (at least 1)
    count: int
    #: what the latest page read said: Apple's state or the carrier's status
    status: str | None = None
    #: Apple's delivery estimate as its first and last day (None: the page gave none)
    estimate: tuple[dt.date, dt.date] | None = None
    #: the purchase has its tracking number (a refresh task looks at it)
    has_number: bool = False

    @property
    def code(self) -> StatusCode | None:
        return code_of(self.status)

    @property
    def preparing(self) -> bool:
        text = unicodedata.normalize("NFKC", self.status or "").strip()
        return text.startswith(PREPARING)


@dataclass(frozen=True)
class Schedule:
    """The schedule's knobs (docs/settings.md), all in seconds."""

    #: never sooner than this after now (``SCHEDULE_MIN_S``)
    min_s: float = 900.0
    #: at most this while the estimate is far (``SCHEDULE_FAR_S``)
    far_s: float = 864_000.0
    #: while Apple's state is ``処理中`` from a transit before the estimate's first day to
    #: ``late_s`` after its last: ``出荷準備中`` lasts half a day or more before the
    #: handover, so a daily look rarely misses it (``SCHEDULE_LIKELY_S``)
    likely_s: float = 86_400.0
    #: while Apple prepares the parcel (``出荷準備中``): the handover is hours away
    #: (``SCHEDULE_PREPARING_S``)
    preparing_s: float = 16_200.0
    #: the carrier's usual transit: Apple hands over about this long before the
    #: estimate's first day (``SCHEDULE_TRANSIT_S``)
    transit_s: float = 172_800.0
    #: an order can ship this long after the estimate's last day; past that the waits
    #: grow with how late it is (``SCHEDULE_LATE_S``)
    late_s: float = 259_200.0
    #: the back-off where the page gives no estimate (``RECHECK_BASE_S``, ``RECHECK_MAX_S``)
    base_s: float = 1_800.0
    max_s: float = 86_400.0
    #: a purchase without a number is given up this long after its first look
    #: (``RECHECK_EXPIRE_S``)
    expire_s: float = 2_592_000.0
    #: with a number: the in-transit wait (``REFRESH_INTERVAL_S``)
    refresh_s: float = 21_600.0

    @property
    def cap_s(self) -> float:
        """The longest wait it ever gives."""
        return max(
            self.min_s,
            self.far_s,
            self.max_s,
            self.refresh_s * max(REFRESH_FACTORS.values()),
        )


def next_look(looks: Looks, now: dt.datetime, schedule: Schedule) -> dt.datetime | None:
    """When to look at the purchase next; None: never again (its story is over, or it
    was given up). Never sooner than ``min_s`` after ``now`` (nor before its latest
    look), never later than the schedule's cap, and, without a number, never at or
    after its expiry."""
    if classify(looks.status) is not Outcome.KEEP_CHECKING:
        return None  # delivered, returned, cancelled: nothing more to learn
    start = max(now, looks.last_at)
    if looks.has_number:
        return start + _seconds(refresh_wait_s(looks.code, schedule))
    wait = max(_seeking_wait(looks, start, schedule), schedule.min_s)
    at = start + _seconds(wait)
    if at >= _expiry(looks.first_at, schedule.expire_s):
        return None
    return at


def refresh_wait_s(code: StatusCode | None, schedule: Schedule) -> float:
    """With a number: the wait after a status of ``code`` (a code that is done is never
    looked at again: :func:`next_look` returns None for it)."""
    return max(schedule.refresh_s * REFRESH_FACTORS.get(code, 1), schedule.min_s)


def _seeking_wait(looks: Looks, now: dt.datetime, schedule: Schedule) -> float:
    """The wait before the next look for a number, from the page's estimate and state:
    rare while the estimate is far, daily once shipping is likely, every few hours once
    Apple prepares the parcel, and growing with the lateness once it is later than
    orders ship."""
    if looks.preparing:
        return schedule.preparing_s  # Apple hands over within hours
    if looks.estimate is None:
        return min(schedule.base_s * 2 ** min(looks.count - 1, 60), schedule.max_s)
    first, last = (dt.datetime.combine(day, dt.time(), TOKYO) for day in looks.estimate)
    likely = first - _seconds(schedule.transit_s)
    if now < likely:
        return min(schedule.far_s, (likely - now).total_seconds())  # far
    late = last + _seconds(schedule.late_s)
    if now < late:
        return schedule.likely_s
    # later than late: the longer it has been, the longer the wait
    return min(max(schedule.likely_s, (now - last).total_seconds()), schedule.far_s)


def _expiry(first_at: dt.datetime, expire_s: float) -> dt.datetime:
    """``expire_s`` after ``first_at``, rounded to the microsecond as every time here
    (inf, or past the calendar's end: never)."""
    try:
        return first_at + _seconds(expire_s)  # a timedelta of inf overflows too
    except OverflowError:
        return dt.datetime.max.replace(tzinfo=dt.UTC)


def _seconds(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


def yamato_next_look(
    last_at: dt.datetime,
    code: StatusCode | None,
    first_day: dt.date | None,
    schedule: Schedule,
) -> dt.datetime | None:
    """When the Yamato refresh looks at a parcel next, after its latest look (or attempt)
    ``last_at`` read ``code``, Apple's estimate beginning on ``first_day`` (None: not
    known). None: done, never again. The first ``YAMATO_HOUR`` o'clock (Tokyo) after
    ``last_at`` that is on or after ``first_day``, or ``YAMATO_OUT_S`` after ``配達中``;
    never later than ``far_s`` after ``last_at``, never sooner than ``min_s``. Rendered to SQL for
    the selection by ``selector.yamato.next_look_sql`` (a test holds the two equal)."""
    if code in DONE_CODES:
        return None
    if code is StatusCode.OUT_FOR_DELIVERY:
        wait = YAMATO_OUT_S
    else:
        local = last_at.astimezone(TOKYO)
        day = local.date() + dt.timedelta(days=local.hour >= YAMATO_HOUR)
        if first_day is not None and first_day > day:
            day = first_day
        wait = (dt.datetime.combine(day, dt.time(YAMATO_HOUR), TOKYO) - last_at).total_seconds()
    return last_at + _seconds(max(min(wait, schedule.far_s), schedule.min_s))
