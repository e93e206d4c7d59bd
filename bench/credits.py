"""Page credits by schedule: a month of the simulator's orders living in time
(webscraper_sim/orders.py) replayed through each way of deciding when to look again, on
a simulated clock, in one run.

Finding the number (the tracking-number task), each purchase first looked at when it is
placed, every look one credit, until its page shows the number, it is cancelled, or 30
days after its first look (``RECHECK_EXPIRE_S``):

- the seed's loop: Worker #4 looks at every purchase without a number on each pass
  (15 minutes);
- (a) the seed's sibling: every 6 hours;
- (b) trackfill before the schedule: ``RECHECK_BASE_S`` (30 min) doubling to
  ``RECHECK_MAX_S`` (24 h);
- (c) the schedule (shared/domain/schedule.py) with its default knobs, reading Apple's
  state and estimate from each page, as the ingestor does.

Following the parcel (the Japan Post refresh), from the look that found its number to
the look that saw it delivered, on passes every 15 minutes; a page carries up to ten
numbers and costs one credit:

- a fixed 6-hourly look at each parcel, the due ones on pages of ten (trackfill before
  the schedule, ``REFRESH_INTERVAL_S``);
- the schedule by status code, each page filled to ten with the parcels due soonest
  (ride-alongs).

    .venv/bin/python bench/credits.py [--orders 10000] [--seed 0] [--no-seed-loop]

It needs no service: it calls the same pure functions the services call.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import heapq
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.domain.dates import estimate_span  # noqa: E402
from shared.domain.invalid import Invalid  # noqa: E402
from shared.domain.schedule import Looks, Schedule, next_look  # noqa: E402
from webscraper_sim.orders import OrderModel, Story, page_at, story_of  # noqa: E402

ORIGIN = dt.datetime(2026, 12, 31, tzinfo=dt.UTC)  # the month's orders are placed before it
EXPIRE = dt.timedelta(days=30)
PASS = dt.timedelta(minutes=15)
PAGE = 10
#: a policy: (its looks so far, now) -> the next look, or None (never again)
Policy = Callable[[Looks, dt.datetime], dt.datetime | None]


@dataclass
class Found:
    looks: int
    #: the look that saw the number (None: never)
    filled_at: dt.datetime | None


def every(seconds: float) -> Policy:
    return lambda seen, now: now + dt.timedelta(seconds=seconds)


def back_off(base_s: float, max_s: float) -> Policy:
    return lambda seen, now: (
        now + dt.timedelta(seconds=min(base_s * 2 ** min(seen.count - 1, 60), max_s))
    )


def scheduled(schedule: Schedule) -> Policy:
    return lambda seen, now: next_look(seen, now, schedule)


def find(story: Story, policy: Policy) -> Found:
    """Look at one story as ``policy`` says until its number shows, or it ends (a
    cancelled order ends every policy: each stops at ``キャンセル済み``)."""
    at, count, first, estimate = story.placed_at, 0, story.placed_at, None
    while at < first + EXPIRE:
        count += 1
        record = page_at(story, at).records[0]
        if record["tracking_number"]:
            return Found(count, at)
        status = record["delivery_status"]
        with contextlib.suppress(Invalid):
            estimate = estimate_span(record["estimated_delivery_date"], at) or estimate
        following = policy(Looks(first, at, count, status, estimate), at)
        if following is None or status == "キャンセル済み":
            break
        at = following
    return Found(count, None)


@dataclass
class Refreshed:
    pages: int = 0
    looks: int = 0
    full_pages: int = 0
    #: pages made while ten or more parcels were being followed
    pages_with_ten_to_carry: int = 0
    lags_h: list[float] = field(default_factory=list)


def refresh(
    fills: list[tuple[Story, dt.datetime]], policy: Policy, ride_along: bool, page: int = PAGE
) -> Refreshed:
    """Follow each filled parcel from its fill to the look that sees it delivered, on
    passes every :data:`PASS`; each pass puts its due parcels on pages of ``page`` (ten
    numbers on Japan Post's page, one parcel on Apple's)."""
    arrivals = sorted(fills, key=lambda fill: fill[1])
    queue: list[tuple[dt.datetime, int]] = []  # (next look, parcel), one entry each
    looks: dict[int, Looks] = {}
    result = Refreshed()
    clock, i = arrivals[0][1], 0
    while i < len(arrivals) or queue:
        clock += PASS
        while i < len(arrivals) and arrivals[i][1] <= clock:
            story, at = arrivals[i]
            looks[i] = _look(story, at, None)
            heapq.heappush(queue, (policy(looks[i], at) or at, i))
            i += 1
        due = []
        while queue and queue[0][0] <= clock:
            due.append(heapq.heappop(queue)[1])
        if not due:
            continue
        followed = len(due) + len(queue)
        while ride_along and len(due) % page and queue:
            due.append(heapq.heappop(queue)[1])
        pages = -(-len(due) // page)
        result.pages += pages
        result.looks += len(due)
        result.full_pages += len(due) // page
        result.pages_with_ten_to_carry += pages if followed >= page else 0
        for parcel in due:
            story = arrivals[parcel][0]
            assert story.delivered_at is not None
            if clock >= story.delivered_at:
                result.lags_h.append((clock - story.delivered_at).total_seconds() / 3600)
                continue
            looks[parcel] = _look(story, clock, looks[parcel])
            heapq.heappush(queue, (policy(looks[parcel], clock) or clock + PASS, parcel))
    return result


def _look(story: Story, at: dt.datetime, before: Looks | None) -> Looks:
    record = page_at(story, at).records[0]
    if before is None:
        estimate = estimate_span(record["estimated_delivery_date"], at)
        return Looks(at, at, 1, record["delivery_status"], estimate, has_number=True)
    return replace(before, last_at=at, count=before.count + 1, status=record["delivery_status"])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[int(share * (len(ordered) - 1))] if ordered else float("nan")


def finding(stories: list[Story], policies: dict[str, Policy]) -> dict[str, list[Found]]:
    print("finding the number: credits, and the wait from handover to the number in the row")
    print(
        f"{'policy':<30} {'credits':>8} {'per filled':>11} {'wait p50':>9} {'p95':>7} "
        f"{'never-shipped: each':>20} {'all':>7}"
    )
    results = {}
    for name, policy in policies.items():
        found = results[name] = [find(story, policy) for story in stories]
        pairs = list(zip(stories, found, strict=True))
        waits = [
            (f.filled_at - s.handover_at) / dt.timedelta(hours=1)
            for s, f in pairs
            if f.filled_at and s.handover_at
        ]
        credits = sum(f.looks for f in found)
        lost = [f.looks for s, f in pairs if s.handover_at is None]
        print(
            f"{name:<30} {credits:>8} {credits / max(len(waits), 1):>11.2f} "
            f"{statistics.median(waits):>8.2f}h {percentile(waits, 0.95):>6.2f}h "
            f"{statistics.mean(lost) if lost else 0:>20.1f} {sum(lost):>7}"
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-seed-loop", action="store_true", help="skip the 15-minute loop")
    args = parser.parse_args()
    model = OrderModel(seed=args.seed, placed_within_days=30)
    stories = [story_of(f"W{n:010d}", model, ORIGIN) for n in range(args.orders)]
    never = [s for s in stories if s.handover_at is None]
    print(f"order model: {model.describe()}")
    print(
        f"{len(stories)} orders placed over 30 days: {len(stories) - len(never)} ship, "
        f"{len(never)} never do ({sum(s.cancelled_at is not None for s in never)} cancelled)"
    )
    schedule = Schedule()
    print(f"schedule: {schedule}\n")
    policies = {
        "(a) seed's sibling, every 6 h": every(21600),
        "(b) back-off 30 min..24 h": back_off(1800, 86400),
        "(c) the schedule": scheduled(schedule),
    }
    if not args.no_seed_loop:
        policies = {"seed's loop, every 15 min": every(900), **policies}
    results = finding(stories, policies)
    per = {name: _per_filled(found) for name, found in results.items()}
    c, a, b = (
        per["(c) the schedule"],
        per["(a) seed's sibling, every 6 h"],
        per["(b) back-off 30 min..24 h"],
    )
    print(f"(c)/(a): credits per filled {c / a:.2f}; (c)/(b): {c / b:.2f}")
    fills = [
        (s, f.filled_at)
        for s, f in zip(stories, results["(c) the schedule"], strict=True)
        if f.filled_at
    ]
    following(fills, schedule)
    return 0


def _per_filled(found: list[Found]) -> float:
    return sum(f.looks for f in found) / max(sum(f.filled_at is not None for f in found), 1)


def following(fills: list[tuple[Story, dt.datetime]], schedule: Schedule) -> None:
    print(f"\nfollowing the parcel: {len(fills)} parcels, from their fill by (c) to delivered")
    print(
        f"{'policy':<32} {'credits':>8} {'per parcel':>11} {'looks':>7} "
        f"{'lag p50':>8} {'p95':>7} {'pages of ten*':>14}"
    )
    refreshes = {
        "fixed 6-hourly look": (every(schedule.refresh_s), False),
        "the schedule, with ride-alongs": (scheduled(schedule), True),
    }
    lag = {}
    for name, (policy, ride_along) in refreshes.items():
        done = refresh(fills, policy, ride_along)
        lag[name] = (done.pages / len(fills), statistics.median(done.lags_h))
        print(
            f"{name:<32} {done.pages:>8} {lag[name][0]:>11.3f} {done.looks:>7} "
            f"{lag[name][1]:>7.1f}h {percentile(done.lags_h, 0.95):>6.1f}h "
            f"{done.full_pages / max(done.pages_with_ten_to_carry, 1):>13.1%}"
        )
    fixed, ours = lag.values()
    print(
        "* of the pages made while ten or more parcels were followed, the share with ten\n"
        f"the schedule / fixed 6-hourly: credits per parcel {ours[0] / fixed[0]:.2f}, "
        f"p50 lag {ours[1] / fixed[1]:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
