"""``trackfill``: the operator's command (docs/operations.md).

trackfill status [--batch UUID|PREFIX] [--json]
trackfill job (ORDER_NUMBER | --purchasing-id N) [--json]
trackfill enqueue (--purchasing-id N | --order W... --email ADDRESS)
trackfill dead-letters list [--limit N] [--json]
trackfill dead-letters replay (--all | MESSAGE_ID ...)
trackfill watch [--task TASK] [--json]

Exit status: 0 done (``watch``: stopped with Ctrl-C); 1 the batch, purchase or message
named does not exist (or the publisher would refuse it); 2 a bad setting or argument, or
the database or RabbitMQ unreachable or refusing; 3 a bug. Always one line on stderr,
never a traceback (TRACKFILL_DEBUG=1 adds it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from amqp.exceptions import AMQPError
from kombu.exceptions import OperationalError as KombuOperationalError
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ops import dead_letters, enqueue, render, status, story, watch
from ops.errors import Unknown, Unreachable
from shared.db.session import make_engine
from shared.domain.masking import mask_emails_in
from shared.domain.urls import UnsafeValue, normalize_order_number, order_status_url
from shared.lifecycle import first_line
from shared.messaging.consuming import CONNECTION_ERRORS
from shared.messaging.publishing import PublishError, connect
from shared.settings import Settings, SettingsError, load_settings
from shared.tasks import TRACKING_TASK_CONFIGS

PROG = "trackfill"
BROKER_ERRORS = (*CONNECTION_ERRORS, AMQPError, KombuOperationalError, PublishError)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="trackfill's operator command")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="batches, jobs in flight, quota, queues, sync_log")
    show.add_argument(
        "--batch", metavar="UUID", type=_batch, help="one batch's jobs (full UUID or 8 hex)"
    )
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    job = commands.add_parser("job", help="one purchase's whole story")
    which = job.add_mutually_exclusive_group(required=True)
    which.add_argument("order_number", nargs="?", type=_order, metavar="ORDER_NUMBER")
    which.add_argument("--purchasing-id", type=_id, metavar="N")
    job.add_argument("--json", action="store_true")
    manual = commands.add_parser("enqueue", help="a manual candidate.found, confirmed")
    manual.add_argument("--purchasing-id", type=_id, metavar="N")
    manual.add_argument("--order", type=_order, metavar="ORDER_NUMBER")
    manual.add_argument("--email", metavar="ADDRESS")
    letters = commands.add_parser("dead-letters", help="list or replay dead-lettered messages")
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every dead letter with its reason (none is lost)")
    listing.add_argument("--limit", type=_id, default=100, metavar="N", help="per queue (100)")
    listing.add_argument("--json", action="store_true")
    again = actions.add_parser("replay", help="publish dead letters back to their exchange")
    again.add_argument("ids", nargs="*", metavar="MESSAGE_ID")
    again.add_argument("--all", action="store_true", help="replay every dead letter")
    follow = commands.add_parser("watch", help="the tracking.updated events, until Ctrl-C")
    follow.add_argument("--task", choices=sorted(TRACKING_TASK_CONFIGS), help="one task's")
    follow.add_argument("--json", action="store_true", help="each event's message, as sent")
    args = parser.parse_args(argv)
    if args.command == "dead-letters" and args.action == "replay" and not (args.ids or args.all):
        parser.error("dead-letters replay: give message ids or --all")
    if args.command == "enqueue":
        _check_manual(manual, args)
    return args


def _check_manual(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    by_order = args.order is not None or args.email is not None
    if (args.purchasing_id is None) == (not by_order):
        parser.error("give --purchasing-id, or --order with --email")
    if by_order:
        if args.order is None or not args.email:
            parser.error("--order and --email go together")
        try:
            order_status_url(args.order, args.email)
        except UnsafeValue as error:
            parser.error(str(error))


def _batch(text: str) -> str:
    try:
        return status.batch_key(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _order(text: str) -> str:
    try:
        return normalize_order_number(text)
    except UnsafeValue as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 10**15:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        return _fail(str(error), 2)
    console = Console(width=None if sys.stdout.isatty() else 200)
    engine = make_engine(settings.database_url, connect_args={"connect_timeout": 5})
    try:
        return COMMANDS[args.command](args, engine, settings, console)
    except (Unknown, Unreachable) as error:
        return _fail(str(error), error.exit_status)
    except DBAPIError as error:
        return _fail(f"cannot use the database: {first_line(error)}", 2)
    except BROKER_ERRORS as error:
        return _fail(f"cannot use RabbitMQ: {first_line(error)}", 2)
    except Exception as error:  # a bug: still one line, the traceback on request
        if os.environ.get("TRACKFILL_DEBUG"):
            traceback.print_exc()
        return _fail(f"internal error ({type(error).__name__}): {first_line(error)}", 3)
    finally:
        engine.dispose()


def _status(args, engine: Engine, settings: Settings, console: Console) -> int:
    if args.batch:
        batch_uuid, jobs = status.batch_jobs(engine, args.batch)
        if args.json:
            _print_json({"batch_uuid": str(batch_uuid), "jobs": jobs})
        else:
            render.batch(str(batch_uuid), jobs, console)
        return 0
    data = status.overview(engine, settings)
    data["queues"], data["broker_error"] = None, None
    try:
        with connect(settings.amqp_url, settings.amqp_heartbeat_s) as connection:
            data["queues"] = status.queue_depths(connection)
    except BROKER_ERRORS as error:  # the database's view still stands
        data["broker_error"] = first_line(error)
    if args.json:
        _print_json(data)
    else:
        render.status(data, console)
    if data["broker_error"]:
        return _fail(f"cannot use RabbitMQ: {data['broker_error']}", 2)
    return 0


def _job(args, engine: Engine, settings: Settings, console: Console) -> int:
    if args.purchasing_id is not None:
        ids = [args.purchasing_id]
    else:
        ids = story.purchases_of(engine, args.order_number)
    stories = [story.story(engine, pid, settings.recheck_expire_s) for pid in ids]
    if args.json:
        _print_json(stories[0] if args.purchasing_id is not None else {"purchases": stories})
        return 0
    for data in stories:
        render.story(data, console)
    return 0


def _enqueue(args, engine: Engine, settings: Settings, console: Console) -> int:
    request = enqueue.request_of(args.purchasing_id, args.order, args.email)
    with connect(settings.amqp_url, settings.amqp_heartbeat_s) as connection:
        done = enqueue.enqueue(engine, connection, request, settings)
    console.print(f"{done.outlook}", markup=False)
    console.print(
        f"candidate.found {done.message_id} for {enqueue.described(request)}: "
        "confirmed by RabbitMQ",
        markup=False,
    )
    return 0


def _dead_letters(args, engine: Engine, settings: Settings, console: Console) -> int:
    with connect(settings.amqp_url, settings.amqp_heartbeat_s) as connection:
        if args.action == "list":
            listing = dead_letters.peek(connection, args.limit)
            if args.json:
                letters = [_masked(x.as_dict()) for x in listing.letters]
                _print_json({"letters": letters, "cut": listing.cut})
            else:
                render.dead_letters(listing, console)
            return 0
        wanted = None if args.all else set(args.ids)
        replayed = dead_letters.replay(connection, wanted)
    for x in replayed:
        console.print(f"replayed {x.message_id} from {x.queue} to {x.origin} ({x.routing_key})")
    console.print(f"{len(replayed)} replayed")
    missing = sorted((wanted or set()) - {x.message_id for x in replayed})
    if missing:
        raise Unknown(f"no dead letter has message id {', '.join(missing)}")
    return 0


def _watch(args, engine: Engine, settings: Settings, console: Console) -> int:
    def show(envelope, text: str) -> None:
        if envelope is None:
            print(f"{PROG}: {text}", file=sys.stderr, flush=True)
        else:
            print(watch.as_json(envelope) if args.json else text, flush=True)

    def ready() -> None:
        print(f"{PROG}: watching tracking.updated ({args.task or 'every task'})", file=sys.stderr)

    try:
        with connect(settings.amqp_url, settings.amqp_heartbeat_s) as connection:
            connection.ensure_connection(max_retries=1)
            watch.follow(connection, args.task, show, ready)
    except KeyboardInterrupt:
        return 0
    return 0


COMMANDS: dict[str, Callable[..., int]] = {
    "status": _status,
    "job": _job,
    "enqueue": _enqueue,
    "dead-letters": _dead_letters,
    "watch": _watch,
}


def _masked(value: dict[str, Any]) -> dict[str, Any]:
    return {k: mask_emails_in(v) if isinstance(v, str) else v for k, v in value.items()}


def _print_json(data: Any) -> None:
    print(json.dumps(data, default=str, ensure_ascii=False))


def _fail(message: str, exit_status: int) -> int:
    print(f"{PROG}: {mask_emails_in(message)}", file=sys.stderr)
    return exit_status


if __name__ == "__main__":
    sys.exit(main())
