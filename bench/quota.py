"""The quota under a backlog, through the whole pipeline: packing against the seed.

One run measures four ways of spending the same quota (200 calls per 9 s: production's
15 minutes compressed a hundredfold) on a backlog of purchases whose pages all carry a
valid tracking number:

- trackfill with ``PUBLISH_MAX_URLS_PER_JOB`` 1 (one purchase per scraping job), 20 (the
  default) and 100: a scratch database and vhost, the simulator and the four services
  as processes (demo.stack), the selector as its daemon (20 a pass), until every
  purchase is filled or the run's time is up;
- the seed's loop against the same simulator: a creation every 6 s (scaled), one
  purchase per job, the download when the job's webhook comes, no ledger.

The simulator scrapes a page in 0.04 s (2 s + 2 s scaled) and runs 10 jobs at once.
Printed for each: purchases filled per window (over the run, and in its best window),
API calls and page credits (as the simulator billed them) per filled purchase, 429
answers, and p50/p95 from selection to filled.
Goals with the default of 20 (issue 20): >= 1,000 filled per window, <= 0.2 calls per
filled purchase, 0 429s.

    .venv/bin/python bench/quota.py [--backlog 3000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from bench.pipeline import WINDOW_S, run_seed_loop, run_stack, seed_body  # noqa: E402
from shared.db.models import OfficialAccount, Purchasing, TrackingJob  # noqa: E402
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK  # noqa: E402

CALLS = 200
EMAIL = "quota.buyer@example.com"


def seed_rows(engine, backlog: int) -> None:
    """``backlog`` purchases whose pages the simulator fills (order endings 0-3)."""
    with engine.begin() as db:
        account = db.execute(
            insert(OfficialAccount).values(email=EMAIL).returning(OfficialAccount.id)
        ).scalar_one()
        orders = [f"W{7_000_000_000 + n * 10 + n % 4:010d}" for n in range(backlog)]
        db.execute(
            insert(Purchasing),
            [{"order_number": order, "official_account_id": account} for order in orders],
        )


def filled(engine) -> list[float]:
    """Seconds from selection to filled, for each purchase filled so far."""
    with engine.connect() as db:
        ages = db.execute(
            select(func.extract("epoch", TrackingJob.completed_at - TrackingJob.created_at))
            .join(Purchasing, Purchasing.id == TrackingJob.purchasing_id)
            .where(TrackingJob.status == "completed", Purchasing.tracking_number.is_not(None))
        ).scalars()
        return [float(age) for age in ages]


def fill_times(engine) -> list[float]:
    with engine.connect() as db:
        return [
            float(t)
            for t in db.execute(
                select(func.extract("epoch", TrackingJob.completed_at)).where(
                    TrackingJob.status == "completed"
                )
            ).scalars()
        ]


def run_trackfill(most: int, args) -> dict:
    def measure(engine, _state, started: float) -> dict:
        return {"ages": filled(engine), "fills": [t - started for t in fill_times(engine)]}

    return run_stack(
        lambda engine: seed_rows(engine, args.backlog),
        {"PUBLISH_MAX_URLS_PER_JOB": str(most), "SELECTOR_MAX_RECORDS": "20"},
        lambda engine: len(filled(engine)) >= args.backlog,
        args.seconds,
        measure,
    )


def run_seed(args) -> dict:
    """The seed's loop (bench/pipeline.py): one purchase per job; what the API refuses
    is lost."""
    ages: list[float] = []
    fills: list[float] = []
    started = time.time()

    def downloaded(age_s: float, body: bytes) -> None:
        if body.strip():
            ages.append(age_s)
            fills.append(time.time() - started)

    bodies = (
        seed_body(
            TASK.sitemap_id,
            TASK.custom_id(f"5eed{n // 10000:04x}", n % 10000),
            f"https://store.apple.com/go/jp/vieworder/W{7_000_000_000 + n * 10:010d}/{EMAIL}",
        )
        for n in range(args.backlog)
    )
    return {**run_seed_loop(bodies, args.seconds, downloaded), "ages": ages, "fills": fills}


def report(name: str, result: dict) -> str:
    ages, fills = sorted(result["ages"]), sorted(result["fills"])
    n = len(ages)
    windows = result["elapsed"] / WINDOW_S
    best = max(
        (sum(1 for t in fills[i:] if t < start + WINDOW_S) for i, start in enumerate(fills)),
        default=0,
    )
    per_call = result["calls"] / n if n else float("inf")
    credits = result["billed"] / n if n else float("inf")
    p50 = statistics.median(ages) if ages else float("nan")
    p95 = ages[int(0.95 * (n - 1))] if ages else float("nan")
    kinds = " ".join(f"{kind} {count}" for kind, count in sorted(result["kinds"].items()))
    return (
        f"{name:26} {n:6d} {n / windows:9.0f} {best:6d} {per_call:7.3f} {credits:8.3f} "
        f"{result['429']:5d} "
        f"{p50:7.1f} {p95:7.1f} {result['elapsed']:6.0f}   {kinds}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=60.0, help="each mode's longest run")
    parser.add_argument("--modes", default="1,20,100,seed")
    args = parser.parse_args()
    print(
        f"backlog {args.backlog} purchases; {CALLS} calls per {WINDOW_S:g} s window; "
        f"each mode at most {args.seconds:g} s ({args.seconds / WINDOW_S:.1f} windows)"
    )
    print(
        f"{'mode':26} {'filled':>6} {'/window':>9} {'best':>6} {'calls/':>7} {'credits/':>8} "
        f"{'429s':>5} "
        f"{'p50 s':>7} {'p95 s':>7} {'run s':>6}"
    )
    print(f"{'':26} {'':>6} {'':>9} {'window':>6} {'filled':>7} {'filled':>8}")
    for mode in args.modes.split(","):
        if mode == "seed":
            line = report("seed loop (6 s, 1 per job)", run_seed(args))
        else:
            line = report(f"PUBLISH_MAX_URLS_PER_JOB={mode}", run_trackfill(int(mode), args))
        print(line, flush=True)
    print("/window: filled over the run's windows; best window: the most filled in any 9 s")
    print("credits/filled: the page credits the simulator billed (one per page loaded) per filled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
