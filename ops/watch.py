"""``trackfill watch``: the tracking.updated events as they are published, one line per
change (docs/events.md), from a queue of the watcher's own (server-named, deleted with
its connection): it never takes an event from another consumer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kombu import Connection, Consumer, Message

from shared.contracts import TrackingUpdated
from shared.messaging.envelope import Envelope, MessageDecodeError, decode
from shared.messaging.topology import TRACKING_UPDATED, declare_topology, watch_queue


def follow(
    connection: Connection,
    task: str | None,
    show: Callable[[Envelope | None, str], None],
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Hand each event of ``task`` (None: every task) to ``show`` (its envelope and
    text; an undecodable one as None and the reason) until interrupted."""

    def on_message(body: Any, message: Message) -> None:
        try:
            envelope = decode(message.body, TRACKING_UPDATED)
            show(envelope, line(envelope, TrackingUpdated.parse(envelope.payload)))
        except MessageDecodeError as error:
            show(None, f"an event that cannot be read: {error}")

    declare_topology(connection)
    with Consumer(connection, [watch_queue(task)], callbacks=[on_message], no_ack=True):
        ready()
        while True:
            try:
                connection.drain_events(timeout=1.0)
            except TimeoutError:
                connection.heartbeat_check()


def line(envelope: Envelope, event: TrackingUpdated) -> str:
    """``<time> <task> purchase <id> <order>: <field> <old> -> <new>; ...``"""
    changes = "; ".join(
        f"{name} {_shown(change['old'])} -> {_shown(change['new'])}"
        for name, change in event.changes.items()
    )
    order = event.order_number or "(no order number)"
    when = envelope.created_at.isoformat(timespec="seconds")
    return f"{when} {event.task} purchase {event.purchasing_id} {order}: {changes}"


def as_json(envelope: Envelope) -> str:
    return envelope.encode().decode()


def _shown(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False).strip('"')
