"""``trackfill``: the operator's command.

trackfill status [--batch UUID] [--json]
trackfill dead-letters list [--json]
trackfill dead-letters replay (--all | MESSAGE_ID ...)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table
from sqlalchemy.exc import InterfaceError, OperationalError

from ops import dead_letters, status
from shared.db.session import make_engine
from shared.domain.masking import mask_emails_in
from shared.messaging.consuming import CONNECTION_ERRORS
from shared.messaging.publishing import connect
from shared.settings import SettingsError, load_settings

PROG = "trackfill"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="trackfill's operator command")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="batches, jobs in flight, quota, queues, sync_log")
    show.add_argument("--batch", metavar="UUID", help="one batch's jobs with their reasons")
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    letters = commands.add_parser("dead-letters", help="list or replay dead-lettered messages")
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every dead letter with its reason (none is lost)")
    listing.add_argument("--json", action="store_true")
    again = actions.add_parser("replay", help="publish dead letters back to their exchange")
    again.add_argument("ids", nargs="*", metavar="MESSAGE_ID")
    again.add_argument("--all", action="store_true", help="replay every dead letter")
    args = parser.parse_args(argv)
    if args.command == "dead-letters" and args.action == "replay" and not (args.ids or args.all):
        parser.error("dead-letters replay: give message ids or --all")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        return _fail(str(error))
    console = Console(width=None if sys.stdout.isatty() else 200)
    engine = make_engine(settings.database_url, connect_args={"connect_timeout": 5})
    try:
        with connect(settings.amqp_url, settings.amqp_heartbeat_s) as connection:
            if args.command == "status":
                return _status(args, engine, connection, settings, console)
            return _dead_letters(args, connection, console)
    except (OperationalError, InterfaceError) as error:
        return _fail(f"cannot use the database: {str(error).splitlines()[0]}")
    except CONNECTION_ERRORS as error:
        return _fail(f"cannot use RabbitMQ: {error}")
    finally:
        engine.dispose()


def _status(args, engine, connection, settings, console: Console) -> int:
    if args.batch:
        jobs = status.batch_jobs(engine, args.batch)
        if args.json:
            print(json.dumps(jobs, default=str, ensure_ascii=False))
            return 0
        table = Table(title=f"batch {args.batch}")
        for column in ("custom_id", "purchasing_id", "job_id", "status", "error", "rejected"):
            table.add_column(column)
        for job in jobs:
            table.add_row(*(_text(job[c]) for c in job))
        console.print(table)
        return 0
    data = status.overview(engine, connection, settings)
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    batches = Table(title="recent batches")
    for column in ("batch", "status", "progress", "completed", "failed", "total", "created"):
        batches.add_column(column)
    for b in data["batches"]:
        ended = b["completed_jobs"] + b["failed_jobs"]
        batches.add_row(
            b["batch_uuid"][:8],
            b["status"],
            ProgressBar(total=max(b["total_jobs"], 1), completed=ended, width=20),
            str(b["completed_jobs"]),
            str(b["failed_jobs"]),
            str(b["total_jobs"]),
            b["created_at"][:19],
        )
    console.print(batches)
    flight = data["jobs_in_flight"]
    console.print(
        "jobs in flight: "
        + (
            ", ".join(
                f"{s} {v['count']} (oldest {v['oldest_age_s']:g} s)" for s, v in flight.items()
            )
            or "none"
        )  # fmt: skip
    )
    console.print(f"given up (RECHECK_EXPIRE_S passed, no tracking number): {data['expired']}")
    quota = data["quota"]
    console.print(
        f"quota: {quota['used']}/{quota['calls']} calls in the last {quota['window_s']:g} s "
        f"({quota['left']} left) {quota['by_kind']}"
        + (f"; blocked until {quota['blocked_until']}" if quota["blocked_until"] else "")
    )
    queues = Table(title="queues")
    for column in ("queue", "messages", "consumers"):
        queues.add_column(column)
    for name, depth in data["queues"].items():
        style = "red" if name.endswith(".dead-letter") and depth["messages"] else None
        queues.add_row(name, str(depth["messages"]), str(depth["consumers"]), style=style)
    console.print(queues)
    for entry in data["sync_log"]:
        mark = "ok" if entry["success"] else "FAILED"
        console.print(
            f"{entry['timestamp'][:19]} {entry['operation_type']} {mark}: {entry['message']}"
        )
    return 0


def _dead_letters(args, connection, console: Console) -> int:
    if args.action == "list":
        letters = dead_letters.peek(connection)
        if args.json:
            print(json.dumps([mask(x.as_dict()) for x in letters], ensure_ascii=False))
            return 0
        table = Table(title=f"{len(letters)} dead letters (none removed)")
        for column in ("message id", "origin", "reason", "dead-lettered", "body"):
            table.add_column(column)
        for x in letters:
            table.add_row(
                x.message_id or "-",
                x.origin,
                x.reason,
                (x.dead_lettered_at or "-")[:19],
                mask_emails_in(x.body[:120]),
            )
        console.print(table)
        return 0
    replayed = dead_letters.replay(connection, None if args.all else set(args.ids))
    for x in replayed:
        console.print(f"replayed {x.message_id} from {x.queue} to {x.origin} ({x.routing_key})")
    console.print(f"{len(replayed)} replayed")
    return 0


def mask(value: dict[str, Any]) -> dict[str, Any]:
    return {k: mask_emails_in(v) if isinstance(v, str) else v for k, v in value.items()}


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(value)
    return str(value)


def _fail(message: str) -> int:
    print(f"{PROG}: {mask_emails_in(message)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
