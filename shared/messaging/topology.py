"""Every exchange and queue of trackfill, declared from this one module.

RabbitMQ closes the channel (406 PRECONDITION_FAILED) when a queue is redeclared with
other arguments, so every service declares through :func:`declare_topology` and nothing
else builds queue arguments. Declaring is idempotent; whichever service starts first
creates everything.

Map (as the management UI shows it)::

    candidate.found --#--> publisher.candidates  (quorum, single active consumer)
    publisher.wait  --expires--> publisher.due  (per-message TTL parking; the publisher
                                                 consumes .due beside .candidates, so a
                                                 message whose time has come does not
                                                 wait behind a backlog of fresh ones)
    job.completed   --#--> ingestor.completions  (quorum)
    ingestor.wait   --expires--> ingestor.completions
    job.published   (event stream; observers bind their own queues)
    tracking.updated --#--> downstream.tracking-updated  (quorum; for the systems
                                                 downstream: docs/events.md; the
                                                 outbox relay publishes, trackfill
                                                 watch binds a queue of its own)
    trackfill.dead-letter --<origin queue>--> <origin queue>.dead-letter

A wait queue holds messages that must not be handled before a later time. Expired
messages leave a queue only from its head (docs/rabbitmq.md), so the code that parks into a
wait queue must only ever append expirations that end no earlier than the one in front.
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu import Connection, Exchange, Queue

CANDIDATE_FOUND = "candidate.found"
JOB_PUBLISHED = "job.published"
JOB_COMPLETED = "job.completed"
TRACKING_UPDATED = "tracking.updated"
EVENT_EXCHANGES = (CANDIDATE_FOUND, JOB_PUBLISHED, JOB_COMPLETED, TRACKING_UPDATED)
DEAD_LETTER_EXCHANGE = "trackfill.dead-letter"

#: Deliveries of one message before RabbitMQ itself dead-letters it (poison guard for
#: crashes in the middle of handling; RabbitMQ 3.10 leaves this unset by default).
DELIVERY_LIMIT = 5

PUBLISHER_CANDIDATES = "publisher.candidates"
PUBLISHER_WAIT = "publisher.wait"
PUBLISHER_DUE = "publisher.due"
INGESTOR_COMPLETIONS = "ingestor.completions"
INGESTOR_WAIT = "ingestor.wait"
DOWNSTREAM_TRACKING_UPDATED = "downstream.tracking-updated"


def exchange(name: str) -> Exchange:
    """A durable topic exchange; the routing key of every message is its task name."""
    return Exchange(name, type="topic", durable=True)


@dataclass(frozen=True)
class ConsumerRoute:
    """A consumer queue, the event exchange feeding it and its wait queue."""

    queue: str
    source: str
    wait_queue: str
    single_active_consumer: bool = False
    #: where parked messages come back (consumed beside ``queue``); ``queue`` if None
    due_queue: str | None = None

    @property
    def return_queue(self) -> str:
        return self.due_queue or self.queue

    @property
    def consumed(self) -> tuple[str, ...]:
        return (self.queue, self.due_queue) if self.due_queue else (self.queue,)

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead-letter"


ROUTES = {
    PUBLISHER_CANDIDATES: ConsumerRoute(
        PUBLISHER_CANDIDATES,
        CANDIDATE_FOUND,
        PUBLISHER_WAIT,
        single_active_consumer=True,
        due_queue=PUBLISHER_DUE,
    ),
    INGESTOR_COMPLETIONS: ConsumerRoute(INGESTOR_COMPLETIONS, JOB_COMPLETED, INGESTOR_WAIT),
}


def consumer_queues(route: ConsumerRoute) -> list[Queue]:
    """Every queue the route's service consumes."""
    queues = [consumer_queue(route)]
    if route.due_queue:
        queues.append(consumer_queue(route, route.due_queue))
    return queues


def consumer_queue(route: ConsumerRoute, name: str | None = None) -> Queue:
    """A quorum queue a service consumes, with its dead-letter path and delivery limit
    (its due queue, given ``name``, is fed only by the wait queue)."""
    arguments: dict[str, object] = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": route.queue,
        "x-delivery-limit": DELIVERY_LIMIT,
    }
    if route.single_active_consumer:
        arguments["x-single-active-consumer"] = True
    if name is not None:
        return Queue(name, Exchange(""), routing_key=name, durable=True, queue_arguments=arguments)
    return Queue(
        route.queue,
        exchange(route.source),
        routing_key="#",
        durable=True,
        queue_arguments=arguments,
    )


def wait_queue(route: ConsumerRoute) -> Queue:
    """A queue without consumers: a message parked with a per-message TTL goes back to
    the consumer queue (through the default exchange) when its TTL expires."""
    return Queue(
        route.wait_queue,
        Exchange(""),
        routing_key=route.wait_queue,
        durable=True,
        queue_arguments={
            "x-queue-type": "classic",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": route.return_queue,
        },
    )


def dead_letter_queue(route: ConsumerRoute) -> Queue:
    """Where rejected messages of ``route.queue`` wait for an operator."""
    return Queue(
        route.dead_letter_queue,
        exchange(DEAD_LETTER_EXCHANGE),
        routing_key=route.queue,
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def downstream_queue() -> Queue:
    """The documented queue for the systems downstream: every tracking.updated event
    (bind another queue to the exchange for a task's alone)."""
    return Queue(
        DOWNSTREAM_TRACKING_UPDATED,
        exchange(TRACKING_UPDATED),
        routing_key="#",
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def watch_queue(task: str | None) -> Queue:
    """An operator's own queue for ``trackfill watch``: server-named, exclusive and
    deleted with its connection, so it takes no event from any other consumer."""
    return Queue(
        "",
        exchange(TRACKING_UPDATED),
        routing_key=task or "#",
        exclusive=True,
        auto_delete=True,
        durable=False,
    )


def all_exchanges() -> list[Exchange]:
    return [exchange(name) for name in (*EVENT_EXCHANGES, DEAD_LETTER_EXCHANGE)]


def all_queues() -> list[Queue]:
    queues: list[Queue] = []
    for route in ROUTES.values():
        # The dead-letter path first: a message dead-lettered to a missing exchange or
        # queue is dropped silently.
        queues += [dead_letter_queue(route), *consumer_queues(route), wait_queue(route)]
    return [*queues, downstream_queue()]


def declare_topology(connection: Connection) -> None:
    """Declare every exchange and queue (idempotent) on ``connection``."""
    with connection.channel() as channel:
        for ex in all_exchanges():
            ex.declare(channel=channel)
        for queue in all_queues():
            queue.declare(channel=channel)
