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
API calls per filled purchase, 429 answers, and p50/p95 from selection to filled.
Goals with the default of 20 (issue 20): >= 1,000 filled per window, <= 0.2 calls per
filled purchase, 0 429s.

    .venv/bin/python bench/quota.py [--backlog 3000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from bench.scratch import scratch_services  # noqa: E402
from demo.stack import Timings, start_stack  # noqa: E402
from shared.db.models import OfficialAccount, Purchasing, TrackingJob  # noqa: E402
from shared.db.session import make_engine  # noqa: E402
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402
from webscraper_sim.server import Simulator  # noqa: E402
from webscraper_sim.state import SimConfig  # noqa: E402

FACTOR = 100
WINDOW_S = 900 / FACTOR
CALLS = 200
PAGE_S = 4 / FACTOR
PARALLEL = 10
TIMINGS = Timings(factor=FACTOR, sim_run_s=0.4, ingest_retry_s=0.3)
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
    with scratch_services() as (database_url, amqp_url), tempfile.TemporaryDirectory() as logs:
        engine = make_engine(database_url)
        seed_rows(engine, args.backlog)
        stack = start_stack(
            database_url,
            amqp_url,
            Path(logs),
            TIMINGS,
            extra_env={
                "PUBLISH_MAX_URLS_PER_JOB": str(most),
                "SELECTOR_MAX_RECORDS": "20",
                "SELECTOR_INTERVAL_S": f"{WINDOW_S:g}",
                "LOG_FORMAT": "json",
            },
            sim_args=["--per-page-s", f"{PAGE_S:g}", "--parallel-tasks", str(PARALLEL)],
        )
        try:
            command, env = [sys.executable, "-m", "selector"], dict(stack.env)
            stack.launches["selector"] = (command, env)
            started = time.time()
            stack.restart("selector")
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline and len(filled(engine)) < args.backlog:
                time.sleep(0.5)
            elapsed = time.time() - started
            calls = stack.sim_state()["calls"]
            result = {
                "ages": filled(engine),
                "fills": [t - started for t in fill_times(engine)],
                "calls": len(calls),
                "kinds": Counter(c["kind"] for c in calls),
                "429": sum(1 for c in calls if c["status"] == 429),
                "elapsed": elapsed,
            }
        finally:
            stack.stop()
            engine.dispose()
    return result


def run_seed(args) -> dict:
    """The seed's loop: sleep the interval, create one job per purchase; download each
    when its webhook comes. No ledger: what the API refuses is lost."""
    hooks = Receiver()
    sim = Simulator(
        SimConfig(
            api_token="seed-token",
            quota_calls=CALLS,
            quota_window_s=WINDOW_S,
            schedule_delay_s=0.1,
            start_delay_s=0.1,
            run_s=0.2,
            per_page_s=PAGE_S,
            parallel_tasks=PARALLEL,
            webhook_url=hooks.url,
        )
    ).start()
    http = requests.Session()
    params = {"api_token": "seed-token"}
    created: dict[int, float] = {}
    ages: list[float] = []
    fills: list[float] = []
    stop = threading.Event()
    started = time.time()

    def download() -> None:
        seen = 0
        while not stop.is_set():
            for hook in hooks.requests[seen:]:
                seen += 1
                job_id = int(hook.form["scrapingjob_id"])
                answer = http.get(sim.api_url + f"scraping-job/{job_id}/json", params=params)
                if answer.status_code == 200 and answer.content.strip() and job_id in created:
                    ages.append(time.time() - created[job_id])
                    fills.append(time.time() - started)
            stop.wait(0.02)

    downloader = threading.Thread(target=download, daemon=True)
    downloader.start()
    try:
        for n in range(args.backlog):
            if time.time() - started > args.seconds:
                break
            time.sleep(6 / FACTOR)
            selected = time.time()
            url = f"https://store.apple.com/go/jp/vieworder/W{7_000_000_000 + n * 10:010d}/{EMAIL}"
            answer = http.post(
                sim.api_url + "scraping-job",
                params=params,
                json={
                    "sitemap_id": 1421177,
                    "driver": "fulljs",
                    "page_load_delay": 2000,
                    "request_interval": 2000,
                    "custom_id": TASK.custom_id(f"5eed{n // 10000:04x}", n % 10000),
                    "start_urls": [url],
                },
            )
            if answer.status_code == 200:
                created[answer.json()["data"]["id"]] = selected
        time.sleep(2)  # the last jobs end and are downloaded
        stop.set()
        downloader.join(5)
        calls = sim.state.snapshot()["calls"]
        return {
            "ages": ages,
            "fills": fills,
            "calls": len(calls),
            "kinds": Counter(c["kind"] for c in calls),
            "429": sum(1 for c in calls if c["status"] == 429),
            "elapsed": time.time() - started,
        }
    finally:
        sim.stop()
        hooks.close()


def report(name: str, result: dict) -> str:
    ages, fills = sorted(result["ages"]), sorted(result["fills"])
    n = len(ages)
    windows = result["elapsed"] / WINDOW_S
    best = max(
        (sum(1 for t in fills[i:] if t < start + WINDOW_S) for i, start in enumerate(fills)),
        default=0,
    )
    per_call = result["calls"] / n if n else float("inf")
    p50 = statistics.median(ages) if ages else float("nan")
    p95 = ages[int(0.95 * (n - 1))] if ages else float("nan")
    kinds = " ".join(f"{kind} {count}" for kind, count in sorted(result["kinds"].items()))
    return (
        f"{name:26} {n:6d} {n / windows:9.0f} {best:6d} {per_call:7.3f} {result['429']:5d} "
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
        f"{'mode':26} {'filled':>6} {'/window':>9} {'best':>6} {'calls/':>7} {'429s':>5} "
        f"{'p50 s':>7} {'p95 s':>7} {'run s':>6}"
    )
    print(f"{'':26} {'':>6} {'':>9} {'window':>6} {'filled':>7}")
    for mode in args.modes.split(","):
        if mode == "seed":
            line = report("seed loop (6 s, 1 per job)", run_seed(args))
        else:
            line = report(f"PUBLISH_MAX_URLS_PER_JOB={mode}", run_trackfill(int(mode), args))
        print(line, flush=True)
    print("/window: filled over the run's windows; best window: the most filled in any 9 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
