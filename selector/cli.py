"""``run_tracking_number_empty``: the seed's manual trigger.

Exit status: 0 when the passes ran (whether or not they found records); 1 with ``--sync``
when a job failed or the wait timed out; 2 for bad settings or an unreachable database
or broker (one line, no traceback).
"""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from selector.service import Selector
from shared.db.models import TrackingBatch, TrackingJob
from shared.db.session import make_engine, make_session_factory
from shared.db.statuses import JobStatus
from shared.domain.masking import mask_email, mask_emails_in
from shared.lifecycle import first_line
from shared.logs import setup_logging
from shared.messaging.consuming import CONNECTION_ERRORS
from shared.messaging.publishing import MessagePublisher, PublishError, connect
from shared.settings import Settings, SettingsError, load_settings
from shared.tasks import (
    JAPAN_POST_TRACKING_10,
    OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO,
    TRACKING_TASK_CONFIGS,
    YAMATO_STATUS_REFRESH,
)

PROG = "run_tracking_number_empty"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find purchases without a tracking number and queue them for lookup "
        "(one selection pass of up to SELECTOR_MAX_RECORDS purchases).",
    )
    _pass_options(parser)
    _sync_options(parser)
    return parser.parse_args(argv)


def _pass_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count", type=_positive, default=1, metavar="N", help="run N selection passes (default 1)"
    )
    parser.add_argument(
        "--sync",
        action="store_true",
        help="wait until the batches finish, showing progress; exit 1 if a "
        "job failed or --timeout passed",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be selected (order, masked e-mail, URL or the "
        "reason it is skipped) and its cost in page credits, and change nothing anywhere",
    )
    parser.add_argument(
        "--task",
        choices=list(TRACKING_TASK_CONFIGS),
        default=OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO.name,
        help="the task whose selection runs (default: the tracking-number task; "
        f"{JAPAN_POST_TRACKING_10.name} refreshes Japan Post statuses, "
        f"{YAMATO_STATUS_REFRESH.name} Yamato's)",
    )


def _sync_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="S",
        help="with --sync: give up after S seconds (default 3600)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=2.0,
        metavar="S",
        help="with --sync: seconds between progress checks (default 2)",
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1: {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        return _fail(str(error))
    task = TRACKING_TASK_CONFIGS[args.task]
    if task.sitemap_in(settings) is None:
        return _fail(f"{task.sitemap_setting} is not set: the task {task.name} is off")
    setup_logging(settings.log_format)
    engine = make_engine(settings.database_url, connect_args={"connect_timeout": 5})
    try:
        return _run(args, settings, engine)
    except (OperationalError, InterfaceError) as error:
        return _fail(f"cannot use the database: {first_line(error)}")
    except (PublishError, *CONNECTION_ERRORS) as error:
        return _fail(f"cannot use RabbitMQ: {first_line(error)}")
    finally:
        engine.dispose()


def _run(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    task = TRACKING_TASK_CONFIGS[args.task]
    sessions = make_session_factory(engine)
    # piped output (scripts, logs) gets wide lines instead of wrapped cells
    console = Console(width=None if sys.stdout.isatty() else 240)
    if args.dry_run:
        return _dry_run(Selector(settings, sessions, None, task), console)
    with connect(settings.amqp_url, settings.amqp_heartbeat_s) as connection:
        selector = Selector(settings, sessions, MessagePublisher(connection), task)
        batches = []
        for number in range(1, args.count + 1):
            result = selector.run_pass(source="manual")
            console.print(
                f"pass {number}/{args.count}: {result.found} found, "
                f"{result.dispatched} dispatched, {len(result.skipped)} skipped, "
                f"{result.republished} re-dispatched"
                + (f", batch {result.batch_uuid}" if result.batch_uuid else "")
            )
            if result.batch_uuid:
                batches.append(result.batch_uuid)
    if args.sync and batches:
        return _wait(sessions, batches, args.timeout, args.poll, console)
    return 0


def _dry_run(selector: Selector, console: Console) -> int:
    held = selector.held()
    if held:
        console.print(f"Dry run: a pass would select nothing: {held}")
        return 0
    candidates, skipped = selector.preview()
    # one page credit per start URL (ten purchases share a Japan Post search page)
    credits = len({candidate.url for candidate in candidates})
    table = Table(
        title=f"Dry run: {len(candidates)} would be dispatched, costing {credits} page "
        f"credit{'s' * (credits != 1)}; {len(skipped)} skipped"
    )
    for column in ("purchasing id", "order", "e-mail", "URL or reason"):
        table.add_column(column)
    for candidate in candidates:
        match = candidate.match
        table.add_row(
            str(match.purchasing_id),
            match.order_number,
            mask_email(match.email),
            mask_emails_in(candidate.url),
        )
    for skip in skipped:
        match = skip.match
        table.add_row(
            str(match.purchasing_id),
            match.order_number or "",
            mask_email(match.email),
            f"skipped: {skip.reason}",
        )
    console.print(table)
    return 0


def _wait(
    sessions: sessionmaker[Session],
    batches: list[str],
    timeout: float,
    poll: float,
    console: Console,
) -> int:
    deadline = time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as progress:
        bars = {uuid: progress.add_task(f"batch {uuid[:8]}", total=None) for uuid in batches}
        while True:
            counts = _progress(sessions, batches)
            for uuid, (total, completed, failed) in counts.items():
                progress.update(
                    bars[uuid],
                    total=total,
                    completed=completed + failed,
                    description=f"batch {uuid[:8]}: {completed} completed, {failed} failed",
                )
            done = all(c + f >= t for t, c, f in counts.values())
            if done or time.monotonic() > deadline:
                break
            time.sleep(poll)
    failed = sum(f for _, _, f in counts.values())
    for uuid, (total, completed, failures) in counts.items():
        console.print(
            f"batch {uuid}: {completed} completed, {failures} failed, "
            f"{total - completed - failures} unfinished of {total}"
        )
    if not done:
        console.print(f"timed out after {timeout:g}s")
        return 1
    return 1 if failed else 0


def _progress(sessions: sessionmaker[Session], batches: list[str]) -> dict[str, tuple[int, ...]]:
    """(total, completed, failed) per batch, counted from its jobs."""
    with sessions() as session:
        rows = session.execute(
            select(
                TrackingBatch.batch_uuid,
                func.count(TrackingJob.id),
                func.count(TrackingJob.id).filter(TrackingJob.status == JobStatus.COMPLETED),
                func.count(TrackingJob.id).filter(TrackingJob.status == JobStatus.FAILED),
            )
            .join(TrackingJob, TrackingJob.batch_id == TrackingBatch.id)
            .where(TrackingBatch.batch_uuid.in_(batches))
            .group_by(TrackingBatch.batch_uuid)
        ).all()
    return {str(uuid): tuple(counts) for uuid, *counts in rows}


def _fail(message: str) -> int:
    print(f"{PROG}: {mask_emails_in(message)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
