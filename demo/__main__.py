"""``python -m demo`` (``./run demo``): the whole pipeline on the local services.

A fresh database ``trackfill_demo`` and vhost ``trackfill-demo`` each run (so running it
twice works), about seventy purchases, the simulator and the four services as processes
(time compressed 30x: the quota is 200 calls per 30 s), one selection pass of each task
by ``run_tracking_number_empty`` (the tracking numbers, then the Japan Post and the
Yamato status refreshes), live progress, then a summary and the ``tracking.updated``
events the run produced. Every process it started
is stopped at the end, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from demo import report
from demo.data import insert_demo_rows
from demo.services import fresh_database, fresh_vhost
from demo.stack import Timings, select_candidates, start_stack
from shared.db.session import make_engine
from shared.quota import QuotaPolicy
from shared.settings import load_settings
from shared.tasks import JAPAN_POST_TRACKING_10, YAMATO_STATUS_REFRESH
from webscraper_sim.state import JAPAN_POST_SITEMAP

ROOT = Path(__file__).resolve().parent.parent


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C and SIGTERM stop everything, also when started where SIGINT is ignored
    # (a background job of a script)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="./run demo", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=100, help="give up after S seconds")
    parser.add_argument("--logs", type=Path, default=ROOT / "var" / "demo-logs")
    parser.add_argument("--database", default="trackfill_demo", help="made afresh each run")
    parser.add_argument("--vhost", default="trackfill-demo", help="made afresh each run")
    args = parser.parse_args(argv)
    console = Console()
    started = time.monotonic()
    args.logs.mkdir(parents=True, exist_ok=True)
    for old in args.logs.glob("*.log"):
        old.unlink()
    database_url = fresh_database(args.database)
    amqp_url, management_url = fresh_vhost(args.vhost)
    engine = make_engine(database_url)
    rows = insert_demo_rows(engine)
    console.print(f"[bold]demo data[/]: {len(rows)} purchases in database {args.database}")
    stack = start_stack(
        database_url,
        amqp_url,
        args.logs,
        Timings(),
        extra_env={"JAPAN_POST_SITEMAP_ID": str(JAPAN_POST_SITEMAP)},
    )
    try:
        console.print("started: webscraper-sim, webhook_gateway, publisher, ingestor")
        for task in (
            (),
            ("--task", JAPAN_POST_TRACKING_10.name),
            ("--task", YAMATO_STATUS_REFRESH.name),
        ):
            selection = select_candidates(stack, *task)
            command = " ".join(("run_tracking_number_empty", *task))
            console.print(f"{command}: {selection.stdout.strip() or selection.stderr}")
            if selection.returncode != 0:
                return 1
        policy = QuotaPolicy.of(load_settings(stack.env))
        with Live(report.progress(engine, policy), console=console, refresh_per_second=4) as live:
            while not report.finished(engine) and time.monotonic() - started < args.timeout:
                time.sleep(0.25)
                live.update(report.progress(engine, policy))
    except KeyboardInterrupt:
        console.print("interrupted: stopping everything")
        return 130
    finally:
        codes = stack.stop()
        console.print()
        console.print(f"stopped: {', '.join(f'{n} ({c})' for n, c in codes.items())}")
    console.print(report.summary(engine, rows))
    console.print(report.events(engine))
    console.print(f"RabbitMQ management UI: {management_url}")
    console.print(f"logs: {args.logs}/")
    example = next((r.order_number for r in rows if r.expected == "pending"), "W...")
    console.print(
        "look around (the rows and the vhost stay until the next run):\n"
        f"  export DATABASE_URL='{database_url}' AMQP_URL='{amqp_url}'\n"
        f"  .venv/bin/trackfill status; .venv/bin/trackfill job {example}",
        markup=False,
        soft_wrap=True,
    )
    console.print(f"whole run: {time.monotonic() - started:.0f} s")
    engine.dispose()
    return 0 if report.finished(engine) else 1


if __name__ == "__main__":
    sys.exit(main())
