"""Dead letters: list them without losing them, replay selected ones to their exchange.

Listing takes each message unacknowledged and closes the channel, so RabbitMQ puts every
one back. Replaying publishes the original body, confirmed, to the exchange that feeds
the message's origin queue, and only then acks the dead letter; every consumer is
idempotent, so a replay that is interrupted and done again changes nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from amqp.exceptions import NotFound
from kombu import Connection

from shared.messaging.publishing import ORIGIN_QUEUE_HEADER, REASON_HEADER, MessagePublisher
from shared.messaging.topology import ROUTES, consumer_queues, dead_letter_queue
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO

DEAD_LETTER_QUEUES = {route.dead_letter_queue: route for route in ROUTES.values()}
#: headers that belong to the dead-lettering, not to the message
_DROPPED = ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
            "x-delivery-count")  # fmt: skip


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    origin: str
    reason: str
    message_id: str | None
    dead_lettered_at: str | None
    routing_key: str
    body: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(queue: str, message: Any) -> DeadLetter:
    headers = dict(message.headers or {})
    deaths = headers.get("x-death") or [{}]
    origin = headers.get(ORIGIN_QUEUE_HEADER) or deaths[0].get("queue") or queue
    reason = headers.get(REASON_HEADER) or f"RabbitMQ: {deaths[0].get('reason', 'unknown')}"
    body = _raw(message).decode("utf-8", errors="replace")
    return DeadLetter(
        queue=queue,
        origin=str(origin),
        reason=str(reason),
        message_id=(message.properties or {}).get("message_id"),
        dead_lettered_at=headers.get("x-trackfill-dead-lettered-at"),
        routing_key=_routing_key(body, deaths[0]),
        body=body,
    )


def _routing_key(body: str, death: dict) -> str:
    """The task name: from the payload, else the key it was first sent with."""
    try:
        task = json.loads(body).get("task")
    except (ValueError, AttributeError):
        task = None
    keys = death.get("routing-keys") or []
    return str(task or (keys[0] if keys else OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO.name))


@dataclass(frozen=True)
class Listing:
    letters: list[DeadLetter]
    #: the queues that hold more than the listing's limit (only the first ones shown)
    cut: list[str]


def peek(connection: Connection, limit: int = 100) -> Listing:
    """Up to ``limit`` dead letters per queue; all stay where they are. A queue that no
    service has declared yet holds none."""
    found: list[DeadLetter] = []
    cut = []
    for queue, route in DEAD_LETTER_QUEUES.items():
        with connection.channel() as channel:  # closing it requeues what was taken
            bound = dead_letter_queue(route)(channel)
            for taken, message in enumerate(_messages(bound)):
                if taken == limit:
                    cut.append(queue)
                    break
                found.append(_read(queue, message))
    return Listing(found, cut)


def _messages(bound: Any) -> Iterator[Any]:
    """The queue's messages, taken unacknowledged, until it is empty (or missing)."""
    while True:
        try:
            message = bound.get(no_ack=False)
        except NotFound:
            return
        if message is None:
            return
        yield message


def replay(connection: Connection, ids: set[str] | None, limit: int = 1000) -> list[DeadLetter]:
    """Publish the dead letters whose message id is in ``ids`` (all if None) back to
    their exchange, confirmed, then ack them; the others stay. The ones replayed."""
    publisher = MessagePublisher(connection)
    replayed: list[DeadLetter] = []
    for queue, route in DEAD_LETTER_QUEUES.items():
        with connection.channel() as channel:
            bound = dead_letter_queue(route)(channel)
            for taken, message in enumerate(_messages(bound)):
                if taken == limit:
                    break
                letter = _read(queue, message)
                if ids is not None and letter.message_id not in ids:
                    continue  # left unacked: back in the queue when the channel closes
                exchange = _exchange_of(letter.origin)
                headers = {
                    k: v for k, v in (message.headers or {}).items()
                    if k not in _DROPPED and not k.startswith("x-trackfill-")
                }  # fmt: skip
                headers["x-trackfill-replayed-from"] = queue
                publisher.publish_raw(
                    exchange,
                    letter.routing_key,
                    _raw(message),
                    headers=headers,
                    message_id=letter.message_id,
                )
                message.ack()
                replayed.append(letter)
    return replayed


def _raw(message: Any) -> bytes:
    """The body as it was sent (kombu may hand it over as text)."""
    body = message.body
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _exchange_of(origin_queue: str) -> str:
    for route in ROUTES.values():
        if origin_queue in {q.name for q in consumer_queues(route)}:
            return route.source
    raise ValueError(f"no exchange feeds {origin_queue!r}")
