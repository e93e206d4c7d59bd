"""What the whole-pipeline benchmarks share: time compressed a hundredfold (200 calls per
9 s window), the stack with its selector daemon on a scratch database and vhost, and the
seed's loop (a creation every 6 s, scaled; the download when the job's webhook comes; no
ledger) against a simulator of its own."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from sqlalchemy import Engine  # noqa: E402

from bench.scratch import scratch_services  # noqa: E402
from demo.stack import Timings, start_stack  # noqa: E402
from shared.db.session import make_engine  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402
from webscraper_sim.server import Simulator  # noqa: E402
from webscraper_sim.state import SimConfig  # noqa: E402

FACTOR = 100
WINDOW_S = 900 / FACTOR
CALLS = 200
PAGE_S = 4 / FACTOR  # a page takes 2 s + 2 s (page_load_delay, request_interval), scaled
PARALLEL = 10  # jobs the simulator runs at once
TIMINGS = Timings(factor=FACTOR, sim_run_s=0.4, ingest_retry_s=0.3)


def calls_of(state: dict[str, Any]) -> dict[str, Any]:
    """The simulator's calls (how many, by kind, and the 429 answers) and the page
    credits it billed, from its state."""
    calls = state["calls"]
    return {
        "billed": state["billed"],
        "calls": len(calls),
        "kinds": Counter(c["kind"] for c in calls),
        "429": sum(1 for c in calls if c["status"] == 429),
    }


def run_stack(
    seed: Callable[[Engine], None],
    extra_env: dict[str, str],
    done: Callable[[Engine], bool],
    seconds: float,
    measure: Callable[[Engine, dict[str, Any], float], dict[str, Any]],
) -> dict[str, Any]:
    """The services and the selector daemon on rows ``seed`` wrote, until ``done`` or
    ``seconds``; ``measure(engine, simulator state, started)`` is the result, with the
    calls (:func:`calls_of`) and the elapsed time."""
    with scratch_services() as (database_url, amqp_url), tempfile.TemporaryDirectory() as logs:
        engine = make_engine(database_url)
        seed(engine)
        stack = start_stack(
            database_url,
            amqp_url,
            Path(logs),
            TIMINGS,
            extra_env={"SELECTOR_INTERVAL_S": f"{WINDOW_S:g}", "LOG_FORMAT": "json", **extra_env},
            sim_args=["--per-page-s", f"{PAGE_S:g}", "--parallel-tasks", str(PARALLEL)],
        )
        try:
            stack.launches["selector"] = ([sys.executable, "-m", "selector"], dict(stack.env))
            started = time.time()
            stack.restart("selector")
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not done(engine):
                time.sleep(0.5)
            state = stack.sim_state()
            return {
                **measure(engine, state, started),
                **calls_of(state),
                "elapsed": time.time() - started,
            }
        finally:
            stack.stop()
            engine.dispose()


def run_seed_loop(
    bodies: Iterable[dict[str, Any]],
    seconds: float,
    downloaded: Callable[[float, bytes], None],
    settle: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """The seed's loop: for each create-job body, sleep the interval and create it; each
    job's records are downloaded when its webhook comes and handed to
    ``downloaded(seconds since its creation, body)``. After the last creation it waits
    up to 2 s (less once ``settle()``) for the last jobs."""
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
    stop = threading.Event()
    started = time.time()

    def download() -> None:
        seen = 0
        while not stop.is_set():
            for hook in hooks.requests[seen:]:
                seen += 1
                scraping_job_id = int(hook.form["scrapingjob_id"])
                answer = http.get(
                    sim.api_url + f"scraping-job/{scraping_job_id}/json", params=params
                )
                if answer.status_code == 200 and scraping_job_id in created:
                    downloaded(time.time() - created[scraping_job_id], answer.content)
            stop.wait(0.02)

    downloader = threading.Thread(target=download, daemon=True)
    downloader.start()
    try:
        for body in bodies:
            if time.time() - started > seconds:
                break
            time.sleep(6 / FACTOR)
            selected = time.time()
            answer = http.post(sim.api_url + "scraping-job", params=params, json=body)
            if answer.status_code == 200:
                created[answer.json()["data"]["id"]] = selected
        deadline = time.monotonic() + 2  # the last jobs end and are downloaded
        while time.monotonic() < deadline and not settle():
            time.sleep(0.1)
        stop.set()
        downloader.join(5)
        return {**calls_of(sim.state.snapshot()), "elapsed": time.time() - started}
    finally:
        sim.stop()
        hooks.close()


def seed_body(sitemap_id: int, custom_id: str, start_url: str) -> dict[str, Any]:
    """The seed's create-job body: one start URL."""
    return {
        "sitemap_id": sitemap_id,
        "driver": "fulljs",
        "page_load_delay": 2000,
        "request_interval": 2000,
        "custom_id": custom_id,
        "start_urls": [start_url],
    }
