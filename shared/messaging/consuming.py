"""The consumer loop every service runs: manual acks, heartbeats, dead letters, SIGTERM.

One message at a time (prefetch 1). The handler runs in a worker thread while this
thread keeps the connection serviced (heartbeats in and out), so a slow API call never
costs the connection. Outcomes:

- the handler returns: the message is acked;
- it raises :class:`Reject` (or the body does not decode): a copy goes to the
  dead-letter queue with the reason in a header, then the original is acked;
- it raises :class:`Transient` (or a database/broker connection error): the handler is
  retried in place with back-off, the message staying unacked for at most
  ``transient_budget_s`` (well under RabbitMQ's 30-minute ack timeout), then requeued;
- any other exception is a bug for that message: it is dead-lettered with the error.

``stop`` (set by SIGTERM in each service's ``__main__``) ends the loop between messages;
a message in hand gets ``shutdown_grace_s`` to finish, or is left unacked and comes back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection, Consumer
from kombu.transport.pyamqp import Transport as AmqpTransport
from sqlalchemy.exc import InterfaceError, OperationalError

from shared.contracts import CONTRACTS
from shared.messaging.envelope import Envelope, MessageDecodeError, decode
from shared.messaging.publishing import MessagePublisher, PublishError
from shared.messaging.topology import ConsumerRoute, consumer_queues, declare_topology
from shared.metrics import PARKINGS

log = logging.getLogger("trackfill.consumer")
TICK_S = 0.02


class Reject(Exception):
    """The message can never be handled; ``str(error)`` is the reason kept with it."""


class Transient(Exception):
    """The message cannot be handled now (an outage); try again later."""


@dataclass(frozen=True)
class Delivery:
    """One received message, decoded and validated against its contract."""

    envelope: Envelope
    message: Any
    headers: Mapping[str, Any]
    queue: str
    redelivered: bool
    publisher: MessagePublisher
    wait_queue: str = ""

    def park(self, delay_s: float, **notes: Any) -> None:
        """Put the message in its wait queue for ``delay_s``; it comes back to ``queue``
        then (the handler returns normally and the original is acked), carrying ``notes``
        as headers. Callers must park with expirations that end no earlier than the ones
        already parked."""
        headers = {k: v for k, v in self.headers.items() if k != "x-delivery-count"}
        headers.update(notes)
        PARKINGS.labels(self.wait_queue).inc()
        self.publisher.publish(
            "", self.wait_queue, self.envelope, expiration_s=max(delay_s, 0.001), headers=headers
        )

    def deaths(self, queue: str, reason: str = "expired") -> int:
        """How often this message was dead-lettered from ``queue`` for ``reason``
        (for a wait queue: how often it was parked)."""
        return sum(
            int(death.get("count", 0))
            for death in self.headers.get("x-death") or []
            if death.get("queue") == queue and death.get("reason") == reason
        )


Handler = Callable[[Delivery], None]


#: Errors of a lost or refused broker connection.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, *AmqpTransport.connection_errors)
_TRANSIENT = (Transient, PublishError, OperationalError, InterfaceError, *CONNECTION_ERRORS)


def is_transient(error: BaseException) -> bool:
    """An outage of a dependency (database, broker) rather than a problem of the message."""
    return isinstance(error, _TRANSIENT)


@dataclass
class _Backoff:
    first_s: float = 0.5
    max_s: float = 30.0
    _next: float = field(default=0.0, init=False)

    def reset(self) -> None:
        self._next = 0.0

    def next(self) -> float:
        self._next = self.first_s if self._next == 0 else min(self._next * 2, self.max_s)
        return self._next


class ConsumerLoop:
    """Consume ``route.queue`` with ``handler`` until ``stop`` is set."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        route: ConsumerRoute,
        handler: Handler,
        stop: threading.Event,
        *,
        poll_s: float = 0.5,
        transient_budget_s: float = 20 * 60,
        shutdown_grace_s: float = 8.0,
    ):
        self._connect = connect
        self._route = route
        self._handler = handler
        self._stop = stop
        self._poll_s = poll_s
        self._transient_budget_s = transient_budget_s
        self._shutdown_grace_s = shutdown_grace_s
        self._received: list[Any] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"{route.queue}-handler")
        self._work_publisher: MessagePublisher | None = None
        self._work_connection: Connection | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        """Serve until ``stop``; reconnects after broker outages. Never raises for them."""
        backoff = _Backoff()
        try:
            while not self._stop.is_set():
                try:
                    with self._connect() as connection:
                        connection.ensure_connection(max_retries=1)
                        declare_topology(connection)
                        backoff.reset()
                        self._serve(connection)
                except CONNECTION_ERRORS as error:
                    self.ready.clear()
                    delay = backoff.next()
                    log.warning("broker connection lost (%s); reconnecting in %.1fs", error, delay)
                    self._stop.wait(delay)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            if self._work_connection is not None:
                self._work_connection.release()

    def _serve(self, connection: Connection) -> None:
        channel = connection.channel()
        channel.basic_qos(0, 1, False)
        control = MessagePublisher(connection, declare=False)
        consumer = Consumer(
            channel,
            queues=consumer_queues(self._route),
            on_message=self._received.append,
            no_ack=False,
        )
        with consumer:
            self.ready.set()
            log.info("consuming %s", ", ".join(self._route.consumed))
            while not self._stop.is_set():
                self._service(connection)
                while self._received and not self._stop.is_set():
                    self._handle(connection, control, self._received.pop(0))
        self._received.clear()  # unacked: RabbitMQ redelivers them when the channel closes

    def _service(self, connection: Connection, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` (``poll_s``) for frames; keep heartbeats flowing."""
        try:
            connection.drain_events(timeout=self._poll_s if timeout is None else timeout)
        except TimeoutError:
            connection.heartbeat_check()

    def _handle(self, connection: Connection, control: MessagePublisher, message: Any) -> None:
        try:
            delivery = self._decode(message)
        except MessageDecodeError as error:
            self._dead_letter(control, message, f"undecodable: {error}")
            return
        outcome = self._run_handler(connection, delivery)
        if outcome is None:
            return  # shutting down with the handler still busy: leave it unacked
        if outcome == "ack":
            message.ack()
        elif outcome == "requeue":
            message.requeue()
        else:
            self._dead_letter(control, message, outcome)

    def _decode(self, message: Any) -> Delivery:
        properties = message.properties or {}
        envelope = decode(message.body, self._route.source, properties.get("message_id"))
        contract = CONTRACTS[self._route.source].parse(envelope.payload)
        return Delivery(
            envelope=envelope,
            message=contract,
            headers=message.headers or {},
            queue=self._route.queue,
            redelivered=bool((message.delivery_info or {}).get("redelivered")),
            publisher=self._publisher_for_worker(),
            wait_queue=self._route.wait_queue,
        )

    def _publisher_for_worker(self) -> MessagePublisher:
        if self._work_publisher is None:
            self._work_connection = self._connect()
            self._work_publisher = MessagePublisher(self._work_connection)
        return self._work_publisher

    def _run_handler(self, connection: Connection, delivery: Delivery) -> str | None:
        """'ack', 'requeue', a dead-letter reason, or None if stopping mid-handler."""
        started = time.monotonic()
        backoff = _Backoff(first_s=1.0)
        while True:
            future = self._executor.submit(self._handler, delivery)
            if not self._wait_for(connection, future):
                return None
            error = future.exception()
            if error is None:
                return "ack"
            if isinstance(error, Reject):
                return str(error)
            if not is_transient(error):
                log.error("handler failed on %s", delivery.envelope.id, exc_info=error)
                return f"handler error: {type(error).__name__}: {error}"
            if time.monotonic() - started > self._transient_budget_s:
                log.warning("giving %s back to the queue after %s", delivery.envelope.id, error)
                return "requeue"
            delay = backoff.next()
            log.warning(
                "transient failure on %s (%s); retrying in %.1fs",
                delivery.envelope.id,
                error,
                delay,
            )
            if not self._wait_for(connection, None, delay):
                return None

    def _wait_for(self, connection: Connection, future: Future | None, delay: float = 0) -> bool:
        """Service the connection until ``future`` is done (or ``delay`` passed).
        False if the stop grace ran out first."""
        deadline = time.monotonic() + delay
        stop_deadline: float | None = None
        while (future is not None and not future.done()) or (
            future is None and time.monotonic() < deadline
        ):
            if self._stop.is_set():
                if future is None:
                    return False
                stop_deadline = stop_deadline or time.monotonic() + self._shutdown_grace_s
                if time.monotonic() > stop_deadline:
                    return False
            if future is not None:
                # wake as soon as the handler is done; frames are read in between
                futures_wait([future], timeout=TICK_S)
                self._service(connection, timeout=0.001)
            else:
                self._service(connection, timeout=min(self._poll_s, TICK_S * 5))
        return True

    def _dead_letter(self, control: MessagePublisher, message: Any, reason: str) -> None:
        log.warning("dead-lettering a message from %s: %s", self._route.queue, reason)
        control.dead_letter(message, self._route.queue, reason)
        message.ack()
