"""The refresh tasks: following a parcel to delivered in page credits (the Yamato refresh
beside Japan Post's), and the Japan Post refresh through the whole pipeline: API calls
per refreshed purchase, and the tracking-number task's share of the creations under a
backlog of both.

- ``yamato`` (first, in seconds, no service): ``--orders`` of the simulator's orders
  living in time (webscraper_sim/orders.py), filled by the schedule as in
  bench/credits.py, then followed from the fill to the look that sees them delivered on
  passes every 15 minutes, each look as the selection makes it: a fixed 6-hourly look
  and the schedule (``yamato_next_look``) on Apple's page, a credit a parcel, and
  Japan Post's schedule with ride-alongs, ten numbers a credit, for comparison. Goal:
  at most 2.5 credits per Yamato parcel to delivered, ``delivered`` in the row within
  6 h of the delivery at p50.

The other modes each run on a scratch database and vhost, with the simulator and the four services
as processes (demo.stack) and the selector as its daemon, 200 calls per 9 s window
(production's 15 minutes compressed a hundredfold):

- ``refresh``: ``--purchases`` shipped Japan Post purchases due a status check, with
  ``PUBLISH_MAX_URLS_PER_JOB`` 20 (the default: 20 search pages of ten numbers, 200
  purchases a scraping job) and 1 (one page of ten a job), until every purchase is
  refreshed or the run's time is up;
- ``seed``: the seed's loop against the same simulator: a creation every 6 s (scaled),
  one search page of ten numbers per job, the download when the job's webhook comes;
- ``mixed``, ``mixed1``: the same refresh backlog beside ``--numbers`` purchases still
  without a tracking number, for ``--seconds``, with packs of 20 URLs and of one (where
  the quota binds both tasks all along); the creations of each task are counted.

Goals: at most 0.02 API calls per refreshed purchase (default packing); the
tracking-number task at least three quarters of the creations in ``mixed``.

    .venv/bin/python bench/refresh.py [--modes yamato,20,1,seed,mixed,mixed1]
        [--orders 4000] [--purchases 2000] [--numbers 3000] [--seconds 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import distinct, func, insert, select  # noqa: E402

from bench.credits import ORIGIN, every, find, percentile, refresh, scheduled  # noqa: E402
from bench.pipeline import CALLS, WINDOW_S, run_seed_loop, run_stack, seed_body  # noqa: E402
from shared.db.models import OfficialAccount, Purchasing, TrackingBatch, TrackingJob  # noqa: E402
from shared.domain.japan_post import MAX_NUMBERS, search_url  # noqa: E402
from shared.domain.schedule import Schedule, yamato_next_look  # noqa: E402
from shared.tasks import JAPAN_POST_TRACKING_10 as REFRESH  # noqa: E402
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as NUMBER_TASK  # noqa: E402
from webscraper_sim.orders import OrderModel, story_of  # noqa: E402
from webscraper_sim.scenarios import japan_post_number  # noqa: E402
from webscraper_sim.state import JAPAN_POST_SITEMAP  # noqa: E402

EMAIL = "refresh.buyer@example.com"
JP = "JP LOGISTICS GROUP CO., LTD."


def numbers(count: int) -> list[str]:
    """Valid numbers, every Japan Post outcome of the simulator in turn."""
    return [japan_post_number(n, n % 10) for n in range(count)]


def seed_rows(engine, purchases: int, without_number: int) -> None:
    with engine.begin() as db:
        account = db.execute(
            insert(OfficialAccount).values(email=EMAIL).returning(OfficialAccount.id)
        ).scalar_one()
        shipped = [
            {
                "order_number": f"W{8_000_000_000 + n:010d}",
                "official_account_id": account,
                "tracking_number": number,
                "shipping_method": JP,
                "latest_delivery_status": "引受",
            }
            for n, number in enumerate(numbers(purchases))
        ]
        waiting = [
            {
                "order_number": f"W{7_000_000_000 + n * 10 + n % 4:010d}",
                "official_account_id": account,
            }
            for n in range(without_number)
        ]
        for chunk in (shipped, waiting):
            if chunk:
                db.execute(insert(Purchasing), chunk)


def refreshed(engine) -> int:
    """Purchases whose refresh job completed (their status was read and written)."""
    with engine.connect() as db:
        return db.execute(
            select(func.count(distinct(TrackingJob.purchasing_id)))
            .join(TrackingBatch, TrackingBatch.id == TrackingJob.batch_id)
            .where(TrackingBatch.task_name == REFRESH.name, TrackingJob.status == "completed")
        ).scalar_one()


def filled(engine) -> int:
    with engine.connect() as db:
        return db.execute(
            select(func.count())
            .select_from(Purchasing)
            .where(Purchasing.tracking_number.is_not(None), Purchasing.order_number.like("W7%"))
        ).scalar_one()


def run_trackfill(most: int, purchases: int, without_number: int, seconds: float) -> dict:
    def measure(engine, state, _started: float) -> dict:
        return {
            "refreshed": refreshed(engine),
            "filled": filled(engine),
            "creations": Counter(job["custom_id"][:6] for job in state["jobs"]),
            "refresh_billed": sum(
                job["billed"] for job in state["jobs"] if REFRESH.owns(job["custom_id"])
            ),
        }

    return run_stack(
        lambda engine: seed_rows(engine, purchases, without_number),
        {
            "PUBLISH_MAX_URLS_PER_JOB": str(most),
            "SELECTOR_MAX_RECORDS": "20",
            "JAPAN_POST_SITEMAP_ID": str(JAPAN_POST_SITEMAP),
            "REFRESH_INTERVAL_S": "86400",  # each purchase is refreshed once here
        },
        # with a tracking backlog beside it, the run is the share's: all of --seconds
        lambda engine: not without_number and refreshed(engine) >= purchases,
        seconds,
        measure,
    )


def run_seed(purchases: int, seconds: float) -> dict:
    """The seed's loop (bench/pipeline.py): one search page of ten numbers per job."""
    records: list[int] = []
    all_numbers = numbers(purchases)
    bodies = (
        seed_body(
            JAPAN_POST_SITEMAP,
            REFRESH.custom_id(f"5eed{n // 100000:04x}", n // MAX_NUMBERS),
            search_url(all_numbers[n : n + MAX_NUMBERS]),
        )
        for n in range(0, purchases, MAX_NUMBERS)
    )
    result = run_seed_loop(
        bodies,
        seconds,
        lambda _age, body: records.append(len(body.splitlines())),
        settle=lambda: sum(records) >= purchases,
    )
    creations = Counter({REFRESH.custom_id_prefix: result["kinds"].get("create", 0)})
    return {
        **result,
        "refreshed": sum(records),
        "filled": 0,
        "creations": creations,
        "refresh_billed": result["billed"],
    }


def yamato(orders: int) -> None:
    """Following the parcel to delivered, each way, on one set of fills (see above)."""
    schedule = Schedule()
    model = OrderModel(seed=0, placed_within_days=30)
    stories = [story_of(f"W{n:010d}", model, ORIGIN) for n in range(orders)]
    fills = [(s, f.filled_at) for s in stories if (f := find(s, scheduled(schedule))).filled_at]
    print(f"following {len(fills)} parcels of {orders} orders from their fill to delivered")
    print(
        f"{'policy':<44} {'credits':>8} {'per parcel':>11} {'looks':>7} {'lag p50':>8} {'p95':>7}"
    )

    def by_yamato(seen, now):
        first_day = seen.estimate[0] if seen.estimate else None
        return yamato_next_look(now, seen.code, first_day, schedule)

    ways = {
        "Japan Post: the schedule, ten a page": (scheduled(schedule), True, MAX_NUMBERS),
        "Yamato (Apple's page): fixed 6-hourly look": (every(schedule.refresh_s), False, 1),
        "Yamato (Apple's page): the schedule": (by_yamato, False, 1),
    }
    figures = {}
    for name, (policy, ride_along, page) in ways.items():
        done = refresh(fills, policy, ride_along, page)
        figures[name] = per, p50 = done.pages / len(fills), statistics.median(done.lags_h)
        print(
            f"{name:<44} {done.pages:>8} {per:>11.3f} {done.looks:>7} "
            f"{p50:>7.1f}h {percentile(done.lags_h, 0.95):>6.1f}h"
        )
    _, fixed, ours = figures.values()
    print(
        f"Yamato, the schedule / fixed 6-hourly: credits per parcel {ours[0] / fixed[0]:.2f}, "
        f"p50 lag {ours[1] / fixed[1]:.2f} (goal: at most 2.5 credits, p50 at most 6 h)\n"
    )


def report(name: str, result: dict) -> str:
    n = result["refreshed"]
    per = result["calls"] / n if n else float("inf")
    credits = result["refresh_billed"] / n if n else float("inf")
    made = result["creations"]
    numbers_made = made.get(NUMBER_TASK.custom_id_prefix, 0)
    total = sum(made.values())
    share = f"{numbers_made / total:.2f}" if total and numbers_made else "-"
    return (
        f"{name:34} {n:9d} {result['calls']:6d} {per:9.4f} {credits:9.4f} {result['429']:5d} "
        f"{total:9d} {share:>6} {result['filled']:7d} {result['elapsed']:6.0f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=2000)
    parser.add_argument("--numbers", type=int, default=3000, help="mixed: tracking backlog")
    parser.add_argument("--seconds", type=float, default=40.0, help="each mode's longest run")
    parser.add_argument("--modes", default="yamato,20,1,seed,mixed,mixed1")
    parser.add_argument("--orders", type=int, default=4000, help="yamato: orders replayed")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if "yamato" in modes:
        yamato(args.orders)
        modes.remove("yamato")
    if not modes:
        return 0
    print(
        f"{args.purchases} purchases due a Japan Post check; {CALLS} calls per {WINDOW_S:g} s "
        f"window; each mode at most {args.seconds:g} s ({args.seconds / WINDOW_S:.1f} windows)"
    )
    print(
        f"{'mode':34} {'refreshed':>9} {'calls':>6} {'calls/':>9} {'credits/':>9} {'429s':>5} "
        f"{'creations':>9} {'number':>6} {'filled':>7} {'run s':>6}"
    )
    print(f"{'':34} {'':>9} {'':>6} {'refreshed':>9} {'refreshed':>9} {'':>5} {'':>9} {'share':>6}")
    for mode in modes:
        if mode == "seed":
            line = report(
                "seed loop (6 s, a page of 10 a job)", run_seed(args.purchases, args.seconds)
            )
        elif mode.startswith("mixed"):  # mixed: packs of 20 URLs; mixed1: of one
            most = int(mode.removeprefix("mixed") or 20)
            result = run_trackfill(most, args.purchases, args.numbers, args.seconds)
            line = report(f"mixed, +{args.numbers} without number, {most}", result)
        else:
            result = run_trackfill(int(mode), args.purchases, 0, args.seconds)
            line = report(f"PUBLISH_MAX_URLS_PER_JOB={mode}", result)
        print(line, flush=True)
    print(
        "calls/refreshed: every API call of the run (create, status, download, ...) per "
        "purchase refreshed (in mixed, the calls of both tasks); credits/refreshed: the page "
        "credits the simulator billed for the refresh's jobs per purchase refreshed; number "
        "share: the tracking-number task's share of creations"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
