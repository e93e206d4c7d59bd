"""The API quota under a backlog: trackfill's publisher against the seed's pacing.

A backlog of candidates goes through the real publisher (RabbitMQ, PostgreSQL, the
ledger) against the simulator with a compressed window; a stand-in for the ingestor
makes each job's follow-up calls (GET job, GET json) through the same ledger when the
simulator's webhook arrives. Then the seed's behaviour runs against the same simulator:
a loop that sleeps the fixed interval (6 s per 900 s, scaled) before each creation and
downloads each job's data when it ends, with no ledger.

Prints, for both: calls, the busiest window against the allowed number, utilisation
(calls per full window over the run, against the allowed number), 429 answers, and for
trackfill the parkings per message. Goal (issue 4): utilisation >= 97%, 0 429s.

    .venv/bin/python bench/quota.py [--candidates 400] [--calls 200] [--window 9]

The defaults are production's numbers with time compressed a hundredfold.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from sqlalchemy import text, update  # noqa: E402

from bench.scratch import scratch_services  # noqa: E402
from publisher import handler as handler_module  # noqa: E402
from publisher.__main__ import build  # noqa: E402
from selector.service import Selector  # noqa: E402
from shared.db.models import TrackingJob  # noqa: E402
from shared.db.session import make_engine, make_session_factory  # noqa: E402
from shared.messaging.publishing import MessagePublisher, connect  # noqa: E402
from shared.messaging.topology import PUBLISHER_WAIT  # noqa: E402
from shared.settings import load_settings  # noqa: E402
from shared.webscraper.client import QuotaWait, WebScraperClient  # noqa: E402
from shared.webscraper.quota import QuotaLedger, QuotaPolicy  # noqa: E402
from tests.support import rows  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402
from webscraper_sim.server import Simulator  # noqa: E402
from webscraper_sim.state import SimConfig  # noqa: E402

TOKEN = "bench-token"


def window_figures(times: list[float], calls: int, window: float) -> tuple[int, float]:
    """(the most calls in any window, mean calls per full window / allowed)."""
    times = sorted(times)
    busiest = max(
        (sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times)),
        default=0,
    )
    full = int((times[-1] - times[0]) // window) if times else 0
    if full == 0:
        return busiest, 0.0
    counts = [
        sum(1 for t in times if times[0] + k * window <= t < times[0] + (k + 1) * window)
        for k in range(full)
    ]
    return busiest, statistics.mean(counts) / calls


def run_trackfill(args, url: str, amqp_url: str, sim: Simulator) -> dict:
    env = {
        "DATABASE_URL": url,
        "AMQP_URL": amqp_url,
        "WEBSCRAPER_API_URL": sim.api_url,
        "WEBSCRAPER_API_TOKEN": TOKEN,
        "API_QUOTA_CALLS": str(args.calls),
        "API_QUOTA_WINDOW_S": str(args.window),
        "PUBLISH_MIN_INTERVAL_S": str(args.window * 6 / 900),
        "API_FOLLOWUP_CALLS_PER_JOB": "2",
        "SELECTOR_MAX_RECORDS": str(args.candidates),
    }
    settings = load_settings(env)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    account = rows.account(engine)
    for _ in range(args.candidates):
        rows.purchase(engine, account)
    parkings: Counter = Counter()
    original = handler_module.CandidateHandler.__call__

    def counting(self, delivery):
        custom_id = delivery.message.custom_id
        parkings[custom_id] = max(parkings[custom_id], delivery.deaths(PUBLISHER_WAIT))
        return original(self, delivery)

    handler_module.CandidateHandler.__call__ = counting
    hooks = Receiver()
    sim.state.config.webhook_url = hooks.url
    stop = threading.Event()
    loop = build(settings, stop)
    threads = [
        threading.Thread(target=loop.run, daemon=True),
        threading.Thread(target=follow_ups, args=(settings, sessions, hooks, stop), daemon=True),
    ]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    with connect(amqp_url) as connection:
        Selector(settings, sessions, MessagePublisher(connection)).run_pass("bench")
    while time.monotonic() - started < args.timeout:
        with engine.connect() as connection:
            done = connection.execute(
                text("SELECT count(*) FROM tracking_job WHERE status = 'completed'")
            ).scalar()
        if done == args.candidates:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join(15)
    hooks.close()
    handler_module.CandidateHandler.__call__ = original
    engine.dispose()
    calls = sim.state.snapshot()["calls"]
    return {
        "calls": calls,
        "completed": done,
        "elapsed": elapsed,
        "parkings": list(parkings.values()),
    }


def follow_ups(settings, sessions, hooks: Receiver, stop: threading.Event) -> None:
    """The ingestor's share of the quota: GET job and GET json per finished job, by a
    few workers (as ingestor replicas would) sharing one ledger."""
    todo: queue.Queue[int] = queue.Queue()
    workers = [
        threading.Thread(target=follow_up_worker, args=(settings, sessions, todo, stop))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    seen = 0
    while not stop.wait(0.02):
        for hook in hooks.requests[seen:]:
            todo.put(int(hook.form["scrapingjob_id"]))
            seen += 1
    for worker in workers:
        worker.join(10)


def follow_up_worker(settings, sessions, todo: queue.Queue, stop: threading.Event) -> None:
    client = WebScraperClient(
        settings.webscraper_api_url, TOKEN, QuotaLedger(sessions, QuotaPolicy.of(settings))
    )
    while not stop.is_set():
        try:
            job_id = todo.get(timeout=0.05)
        except queue.Empty:
            continue
        for call in (client.get_job, client.download_json):
            while not stop.is_set():
                try:
                    call(job_id)
                    break
                except QuotaWait as wait:
                    time.sleep(min(wait.wait_s, 0.5))
        with sessions() as session, session.begin():
            session.execute(
                update(TrackingJob).where(TrackingJob.job_id == job_id).values(status="completed")
            )


def run_seed(args, sim: Simulator, candidates: int) -> dict:
    """The seed: sleep the interval, create; download each job once it has ended."""
    http = requests.Session()
    interval = args.window * 6 / 900
    created: list[tuple[int, float]] = []
    started = time.monotonic()
    for n in range(candidates):
        time.sleep(interval)
        answer = http.post(
            sim.api_url + "scraping-job",
            params={"api_token": TOKEN},
            json={
                "sitemap_id": 1421177,
                "driver": "fulljs",
                "page_load_delay": 2000,
                "request_interval": 2000,
                "custom_id": f"seed-{n:04d}",
                "start_urls": [f"https://store.apple.com/go/jp/vieworder/W{n:010d}/a@b.jp"],
            },
        )
        if answer.status_code == 200:
            created.append((answer.json()["data"]["id"], time.monotonic()))
    for job_id, _ in created:
        http.get(sim.api_url + f"scraping-job/{job_id}/json", params={"api_token": TOKEN})
    return {
        "calls": sim.state.snapshot()["calls"],
        "completed": len(created),
        "elapsed": time.monotonic() - started,
        "parkings": [],
    }


def per_window(calls: list[dict], window: float) -> list[str]:
    """creations+follow-ups in each full window from the first call (for the eye)."""
    if not calls:
        return []
    start = min(c["t"] for c in calls)
    full = int((max(c["t"] for c in calls) - start) // window)
    cells = []
    for k in range(full):
        inside = [c for c in calls if start + k * window <= c["t"] < start + (k + 1) * window]
        made = sum(1 for c in inside if c["kind"] == "create")
        cells.append(f"{made}+{len(inside) - made}")
    return cells


def report(name: str, result: dict, args) -> None:
    calls = result["calls"]
    busiest, utilisation = window_figures([c["t"] for c in calls], args.calls, args.window)
    too_many = sum(1 for c in calls if c["status"] == 429)
    kinds = Counter(c["kind"] for c in calls)
    parkings = result["parkings"]
    print(
        f"{name}: {len(calls)} calls ({dict(kinds)}) in {result['elapsed']:.1f}s, "
        f"{result['completed']} jobs done"
    )
    print(
        f"  busiest window: {busiest} calls (allowed {args.calls}); utilisation "
        f"{utilisation:.1%} of the allowed calls per full window; 429 answers: {too_many}"
    )
    print(f"  per full window (creations+others): {' '.join(per_window(calls, args.window))}")
    if parkings:
        print(f"  parkings per message: max {max(parkings)}, mean {statistics.mean(parkings):.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=400)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--window", type=float, default=9.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    sim = Simulator(
        SimConfig(
            api_token=TOKEN,
            quota_calls=args.calls,
            quota_window_s=args.window,
            schedule_delay_s=0.05,
            start_delay_s=0.05,
            run_s=0.3,
        )
    ).start()
    try:
        with scratch_services() as (url, amqp_url):
            print(
                f"{args.candidates} candidates; quota {args.calls} calls per "
                f"{args.window:g}s; creations at least {args.window * 6 / 900:.3f}s apart "
                "(6 s per 900 s)"
            )
            report("trackfill", run_trackfill(args, url, amqp_url, sim), args)
        sim.state.reset()
        sim.state.config.webhook_url = None
        report(
            "seed (sleep the interval, create, download)",
            run_seed(args, sim, args.candidates),
            args,
        )
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
