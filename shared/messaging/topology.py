"""Every exchange and queue of trackfill, declared from this one module.

RabbitMQ closes the channel (406 PRECONDITION_FAILED) when a queue is redeclared with
other arguments, so every service declares through :func:`declare_topology` and nothing
else builds queue arguments. Declaring is idempotent; whichever service starts first
creates everything.

Map (as the management UI shows it)::

    candidate.found --#--> publisher.candidates  (quorum, single active consumer)
    publisher.wait  --expires--> publisher.candidates   (per-message TTL parking)
    job.completed   --#--> ingestor.completions  (quorum)
    ingestor.wait   --expires--> ingestor.completions
    job.published   (event stream; observers bind their own queues)
    trackfill.dead-letter --<origin queue>--> <origin queue>.dead-letter

A wait queue holds messages that must not be handled before a later time. Expired
messages leave a queue only from its head (RABBITMQ.md), so the code that parks into a
wait queue must only ever append expirations that end no earlier than the one in front.
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu import Connection, Exchange, Queue

CANDIDATE_FOUND = "candidate.found"
JOB_PUBLISHED = "job.published"
JOB_COMPLETED = "job.completed"
EVENT_EXCHANGES = (CANDIDATE_FOUND, JOB_PUBLISHED, JOB_COMPLETED)
DEAD_LETTER_EXCHANGE = "trackfill.dead-letter"

#: Deliveries of one message before RabbitMQ itself dead-letters it (poison guard for
#: crashes in the middle of handling; RabbitMQ 3.10 leaves this unset by default).
DELIVERY_LIMIT = 5

PUBLISHER_CANDIDATES = "publisher.candidates"
PUBLISHER_WAIT = "publisher.wait"
INGESTOR_COMPLETIONS = "ingestor.completions"
INGESTOR_WAIT = "ingestor.wait"


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

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead-letter"


ROUTES = {
    PUBLISHER_CANDIDATES: ConsumerRoute(
        PUBLISHER_CANDIDATES, CANDIDATE_FOUND, PUBLISHER_WAIT, single_active_consumer=True
    ),
    INGESTOR_COMPLETIONS: ConsumerRoute(INGESTOR_COMPLETIONS, JOB_COMPLETED, INGESTOR_WAIT),
}


def consumer_queue(route: ConsumerRoute) -> Queue:
    """The quorum queue a service consumes, with its dead-letter path and delivery limit."""
    arguments: dict[str, object] = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": route.queue,
        "x-delivery-limit": DELIVERY_LIMIT,
    }
    if route.single_active_consumer:
        arguments["x-single-active-consumer"] = True
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
            "x-dead-letter-routing-key": route.queue,
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


def all_exchanges() -> list[Exchange]:
    return [exchange(name) for name in (*EVENT_EXCHANGES, DEAD_LETTER_EXCHANGE)]


def all_queues() -> list[Queue]:
    queues: list[Queue] = []
    for route in ROUTES.values():
        # The dead-letter path first: a message dead-lettered to a missing exchange or
        # queue is dropped silently.
        queues += [dead_letter_queue(route), wait_queue(route), consumer_queue(route)]
    return queues


def declare_topology(connection: Connection) -> None:
    """Declare every exchange and queue (idempotent) on ``connection``."""
    with connection.channel() as channel:
        for ex in all_exchanges():
            ex.declare(channel=channel)
        for queue in all_queues():
            queue.declare(channel=channel)
