"""The consumer loop every service runs: manual acks, heartbeats, dead letters, SIGTERM.

One message at a time (prefetch 1), or, with ``group_size`` N, up to N messages handed
to a group handler at once (prefetch N: what arrived while the previous group was being
handled), so that their database work can share transactions. The handler runs in a
worker thread while this thread keeps the connection serviced (heartbeats in and out), so
a slow API call never costs the connection. Outcomes, per message:

- the handler returns: the message is acked;
- it raises :class:`Reject` (or the body does not decode): a copy goes to the
  dead-letter queue with the reason in a header, then the original is acked;
- it raises :class:`Transient` (or a database/broker connection error): the handler is
  retried in place with back-off, the message staying unacked for at most
  ``transient_budget_s`` (well under RabbitMQ's 30-minute ack timeout), then requeued;
- any other exception is a bug for that message: it is dead-lettered with the error.

A group handler returns one outcome per message (None, or the exception it would have
raised); the messages whose outcome is transient are handled again, alone as a group,
after the back-off, while the others are settled at once. A handler of one delivery is
run the same way, in groups of one.

``stop`` (set by SIGTERM in each service's ``__main__``) ends the loop between messages;
a message in hand gets ``shutdown_grace_s`` to finish, or is left unacked and comes back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from typing import Any, cast

from kombu import Connection, Consumer

from shared.messaging.delivery import (
    CONNECTION_ERRORS,
    Delivery,
    GroupHandler,
    Handler,
    Reject,
    Transient,
    is_transient,
    one_at_a_time,
)
from shared.messaging.envelope import MessageDecodeError, decode
from shared.messaging.publishing import MessagePublisher
from shared.messaging.topology import ConsumerRoute, consumer_queues, declare_topology
from shared.messaging.worker import Backoff, Worker

__all__ = [
    "CONNECTION_ERRORS",
    "ConsumerLoop",
    "Delivery",
    "GroupHandler",
    "Handler",
    "Reject",
    "Transient",
    "is_transient",
]
log = logging.getLogger("trackfill.consumer")
TICK_S = 0.02
#: how long a group waits for the next message of a batch arriving together
FILL_GAP_S = 0.005


#: what a message's payload is read into: a contract's ``parse``, which raises
#: MessageDecodeError for a payload that does not meet it (dead-lettered with the reason)
Schema = Callable[[Mapping[str, Any]], Any]


class ConsumerLoop:
    """Consume ``route.queue`` with ``handler`` until ``stop`` is set; each message's
    payload is read with ``schema``."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        route: ConsumerRoute,
        handler: Handler | GroupHandler,
        stop: threading.Event,
        *,
        schema: Schema,
        group_size: int | None = None,
        poll_s: float = 0.5,
        transient_budget_s: float = 20 * 60,
        shutdown_grace_s: float = 8.0,
    ):
        self._connect = connect
        self._route = route
        self._schema = schema
        #: groups of one for a handler that takes one delivery (``group_size`` None)
        self._handler: GroupHandler = (
            cast(GroupHandler, handler) if group_size else one_at_a_time(cast(Handler, handler))
        )
        self._group_size = group_size or 1
        self._stop = stop
        self._poll_s = poll_s
        self._transient_budget_s = transient_budget_s
        self._shutdown_grace_s = shutdown_grace_s
        self._received: list[Any] = []
        self._worker = Worker(f"{route.queue}-handler")
        self._work_publisher: MessagePublisher | None = None
        self._work_connection: Connection | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        """Serve until ``stop``; reconnects after broker outages. Never raises for them."""
        backoff = Backoff()
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
            self._worker.close()
            if self._work_connection is not None:
                self._work_connection.release()

    def _serve(self, connection: Connection) -> None:
        # deliveries of a channel that died with them in hand are void: RabbitMQ has
        # requeued them, and acking them on the new channel would fail
        self._received.clear()
        channel = connection.channel()
        channel.basic_qos(0, self._group_size, False)
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
                    self._fill_group(connection)
                    group = self._received[: self._group_size]
                    del self._received[: self._group_size]
                    self._handle_group(connection, control, group)

    def _service(self, connection: Connection, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` (``poll_s``) for frames; keep heartbeats flowing."""
        try:
            connection.drain_events(timeout=self._poll_s if timeout is None else timeout)
        except TimeoutError:
            connection.heartbeat_check()

    def _decode(self, message: Any) -> Delivery:
        properties = message.properties or {}
        envelope = decode(message.body, self._route.source, properties.get("message_id"))
        contract = self._schema(envelope.payload)
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

    def _handle_group(self, connection: Connection, control: MessagePublisher, group: list) -> None:
        pending: list[tuple[Any, Delivery]] = []
        for message in group:
            try:
                pending.append((message, self._decode(message)))
            except MessageDecodeError as error:
                self._dead_letter(control, message, f"undecodable: {error}")
        started = time.monotonic()
        backoff = Backoff(first_s=1.0)
        while pending:
            deliveries = [delivery for _, delivery in pending]
            future = self._worker.submit(self._handler, deliveries)
            if not self._wait_for(connection, future):
                return  # shutting down with the handler still busy: leave them unacked
            outcomes = self._outcomes(future, len(pending))
            retry = []
            for (message, delivery), outcome in zip(pending, outcomes, strict=True):
                if outcome is not None and is_transient(outcome):
                    retry.append((message, delivery))
                else:
                    self._settle(control, message, self._verdict(delivery, outcome))
            pending = retry
            if not pending:
                return
            cause = next(o for o in outcomes if o is not None and is_transient(o))
            which = f"{pending[0][1].envelope.id} and {len(pending) - 1} more"
            if time.monotonic() - started > self._transient_budget_s:
                log.warning("giving %s back to the queue after %s", which, cause)
                for message, _ in pending:
                    message.requeue()
                return
            delay = backoff.next()
            log.warning("transient failure on %s (%s); retrying in %.1fs", which, cause, delay)
            if not self._wait_for(connection, None, delay):
                return

    @staticmethod
    def _outcomes(future: Future, count: int) -> list[BaseException | None]:
        error = future.exception()
        if error is None:
            outcomes = future.result()
            if isinstance(outcomes, list) and len(outcomes) == count:
                return outcomes
            error = TypeError(f"the group handler did not give {count} outcomes: {outcomes!r}")
        return [error] * count

    def _fill_group(self, connection: Connection) -> None:
        """Take in the messages that have already arrived, up to a group (each read of
        the connection brings one); a message a few milliseconds behind the one before
        it (a batch published together) still joins the group."""
        while len(self._received) < self._group_size:
            before = len(self._received)
            self._service(connection, timeout=FILL_GAP_S)
            if len(self._received) == before:
                return

    def _settle(self, control: MessagePublisher, message: Any, outcome: str) -> None:
        """Ack (``outcome`` 'ack') or dead-letter with ``outcome`` as the reason."""
        if outcome == "ack":
            message.ack()
        else:
            self._dead_letter(control, message, outcome)

    @staticmethod
    def _verdict(delivery: Delivery, error: BaseException | None) -> str:
        """'ack', or the reason a message that ended with ``error`` is dead-lettered."""
        if error is None:
            return "ack"
        if isinstance(error, Reject):
            return str(error)
        log.error("handler failed on %s", delivery.envelope.id, exc_info=error)
        return f"handler error: {type(error).__name__}: {error}"

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
