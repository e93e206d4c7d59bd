"""``webscraper-sim``: run the Web Scraper Cloud simulator until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import threading

from webscraper_sim.orders import OrderModel
from webscraper_sim.server import Simulator
from webscraper_sim.state import Living, SimConfig


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of seconds: {text!r}") from None
    if any(d < 0 for d in delays):
        raise argparse.ArgumentTypeError("delays must not be negative")
    return delays


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SimConfig()
    parser = argparse.ArgumentParser(
        prog="webscraper-sim",
        description="A local Web Scraper Cloud API v1 (jobs, downloads, quota, webhooks).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900, help="0 picks a free port")
    parser.add_argument(
        "--token",
        default=os.environ.get("WEBSCRAPER_API_TOKEN") or defaults.api_token,
        help="the api_token the simulator accepts (default: $WEBSCRAPER_API_TOKEN)",
    )
    parser.add_argument("--webhook-url", default=None, help="where finished jobs are notified")
    parser.add_argument("--quota-calls", type=int, default=defaults.quota_calls)
    parser.add_argument("--quota-window-s", type=float, default=defaults.quota_window_s)
    parser.add_argument("--schedule-delay-s", type=float, default=defaults.schedule_delay_s)
    parser.add_argument("--start-delay-s", type=float, default=defaults.start_delay_s)
    parser.add_argument("--run-s", type=float, default=defaults.run_s)
    parser.add_argument("--webhook-timeout-s", type=float, default=defaults.webhook_timeout_s)
    parser.add_argument(
        "--webhook-retry-delays",
        type=_delays,
        default=defaults.webhook_retry_delays_s,
        help="comma-separated seconds between webhook attempts (default 5,10)",
    )
    parser.add_argument(
        "--per-page-s",
        type=float,
        default=defaults.per_page_s,
        help="scraping time of each start URL (pages go one after another)",
    )
    parser.add_argument(
        "--parallel-tasks",
        type=int,
        default=defaults.parallel_tasks,
        help="jobs running at once; the rest wait to be scheduled (0: no limit)",
    )
    parser.add_argument(
        "--latency-s",
        type=float,
        default=defaults.latency_s,
        help="every API call's answer takes this long",
    )
    parser.add_argument(
        "--living-speed",
        type=float,
        default=None,
        help="orders live in time (webscraper_sim/orders.py), on a clock this many times "
        "faster than the wall clock, started now (default: the fixed scenarios)",
    )
    parser.add_argument("--living-seed", type=int, default=0, help="the living orders' seed")
    parser.add_argument(
        "--living-origin",
        type=_instant,
        default=None,
        help="when the living orders' clock starts, an ISO 8601 time with its offset "
        "(default: now), so that a test or a bench knows every story",
    )
    parser.add_argument(
        "--page-credits",
        type=int,
        default=defaults.page_credits,
        help="the account's page credits at start; each page loaded costs one",
    )
    parser.add_argument(
        "--data-delay-s",
        type=float,
        default=0.0,
        help="data appears this long after a job ends (its webhook is early)",
    )
    return parser.parse_args(argv)


def _instant(text: str) -> dt.datetime:
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from error
    if instant.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the time's offset: {text!r}")
    return instant


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SimConfig(
        api_token=args.token,
        quota_calls=args.quota_calls,
        quota_window_s=args.quota_window_s,
        schedule_delay_s=args.schedule_delay_s,
        start_delay_s=args.start_delay_s,
        run_s=args.run_s,
        per_page_s=args.per_page_s,
        parallel_tasks=args.parallel_tasks,
        latency_s=args.latency_s,
        webhook_url=args.webhook_url,
        webhook_timeout_s=args.webhook_timeout_s,
        webhook_retry_delays_s=args.webhook_retry_delays,
        page_credits=args.page_credits,
        living=None
        if args.living_speed is None
        else Living(
            OrderModel(seed=args.living_seed),
            args.living_origin or dt.datetime.now(dt.UTC),
            args.living_speed,
        ),
    )
    sim = Simulator(config, args.host, args.port)
    sim.state.faults.data_delay_s = args.data_delay_s
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sim.start()
    print(f"webscraper-sim listening on {sim.api_url}", flush=True)
    if config.living is not None:
        print(config.living.describe(), flush=True)
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
