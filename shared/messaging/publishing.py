"""Confirmed, persistent publishing.

:class:`MessagePublisher` puts its channel in confirm mode and returns only once RabbitMQ
has taken responsibility for every message it was given; a nack, a ``mandatory``
message that no queue took, or no confirm in time raises :class:`PublishError`.
:meth:`MessagePublisher.publish_many` sends a whole list before waiting, so a batch
costs one round trip instead of one per message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection, Exchange, Producer
from kombu.transport.pyamqp import Transport as AmqpTransport

from shared.messaging.envelope import Envelope
from shared.messaging.topology import DEAD_LETTER_EXCHANGE, declare_topology

REASON_HEADER = "x-trackfill-reason"
ORIGIN_QUEUE_HEADER = "x-trackfill-origin-queue"
CONFIRM_TIMEOUT_S = 30.0
_CONNECTION_ERRORS = (OSError, *AmqpTransport.connection_errors)


class PublishError(RuntimeError):
    """RabbitMQ did not take the message (nack, no route, or the connection failed)."""


def connect(amqp_url: str, heartbeat_s: float = 30, connect_timeout_s: float = 5) -> Connection:
    """A kombu connection with heartbeats (kombu's default is off)."""
    heartbeat = max(1, round(heartbeat_s)) if heartbeat_s > 0 else 0
    return Connection(amqp_url, heartbeat=heartbeat, connect_timeout=connect_timeout_s)


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: where, what, and how."""

    exchange: str
    routing_key: str
    body: bytes
    mandatory: bool = True
    expiration_s: float | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    content_type: str = "application/json"

    @classmethod
    def of(cls, exchange: str, routing_key: str, envelope: Envelope, **options: Any) -> Outgoing:
        return cls(exchange, routing_key, envelope.encode(), message_id=envelope.id, **options)


class _Confirms:
    """Delivery tags sent on a confirm-mode channel and not yet acked or nacked."""

    def __init__(self) -> None:
        self.sent = 0
        self.pending: set[int] = set()
        self.nacked = 0
        self.returned: list[str] = []

    def on_ack(self, tag: int, multiple: bool) -> None:
        self.pending -= {t for t in self.pending if t <= tag} if multiple else {tag}

    def on_nack(self, tag: int, multiple: bool) -> None:
        before = len(self.pending)
        self.on_ack(tag, multiple)
        self.nacked += before - len(self.pending)

    def on_return(self, exception: Exception, exchange: str, routing_key: str, message: Any):
        self.returned.append(f"{exchange or '(default)'}/{routing_key}: {exception}")


class MessagePublisher:
    """Publishes on one confirm-mode channel of ``connection``; one per thread."""

    def __init__(self, connection: Connection, declare: bool = True):
        self._connection = connection
        self._declare = declare
        self._producer: Producer | None = None
        self._confirms = _Confirms()

    def publish(self, exchange: str, routing_key: str, envelope: Envelope, **options: Any):
        """Publish ``envelope`` persistently and wait for the broker's confirm."""
        self.publish_many([Outgoing.of(exchange, routing_key, envelope, **options)])

    def publish_raw(self, exchange: str, routing_key: str, body: bytes, **options: Any) -> None:
        """Publish bytes as they are (dead letters keep their original body)."""
        self.publish_many([Outgoing(exchange, routing_key, body, **options)])

    def publish_many(self, messages: Sequence[Outgoing]) -> None:
        """Send every message, then wait for all their confirms; on a connection that
        died while idle, reconnect and send them all again once (a duplicate is possible
        if the broker had confirmed; every consumer is idempotent)."""
        if not messages:
            return
        for attempt in (1, 2):
            try:
                self._send_and_wait(messages)
                return
            except _CONNECTION_ERRORS as error:
                self._reset()
                if attempt == 2:
                    raise PublishError(f"publish failed: {error!r}") from error
            except PublishError:
                raise  # refused or returned: the channel is still good
            except Exception as error:
                self._reset()
                raise PublishError(f"publish failed: {error!r}") from error

    def ensure_ready(self) -> None:
        """Connect (and declare the topology) now; :class:`PublishError` if RabbitMQ cannot
        be reached, so a caller can refuse work it could not publish."""
        try:
            self._ensure_producer()
        except Exception as error:
            self._reset()
            raise PublishError(f"cannot connect to RabbitMQ: {error!r}") from error

    def dead_letter(self, message: Any, origin_queue: str, reason: str) -> None:
        """Publish a copy of a received kombu ``message`` to the dead-letter exchange,
        with the reason in a header; the caller acks the original afterwards."""
        headers = dict(message.headers or {})
        headers[REASON_HEADER] = reason[:1000]
        headers[ORIGIN_QUEUE_HEADER] = origin_queue
        headers["x-trackfill-dead-lettered-at"] = dt.datetime.now(dt.UTC).isoformat()
        properties = message.properties or {}
        self.publish_raw(
            DEAD_LETTER_EXCHANGE,
            origin_queue,
            message.body,
            headers=headers,
            message_id=properties.get("message_id"),
            content_type=message.content_type or "application/octet-stream",
        )

    def _send_and_wait(self, messages: Sequence[Outgoing]) -> None:
        producer = self._ensure_producer()
        confirms = self._confirms
        confirms.returned.clear()
        confirms.nacked = 0
        for message in messages:
            producer.publish(
                message.body,
                exchange=Exchange(message.exchange) if message.exchange else "",
                routing_key=message.routing_key,
                content_type=message.content_type,
                content_encoding="utf-8",
                delivery_mode=2,
                mandatory=message.mandatory,
                expiration=message.expiration_s,
                headers=dict(message.headers),
                message_id=message.message_id,
                declare=[],
            )
            confirms.sent += 1
            confirms.pending.add(confirms.sent)
        self._wait_for_confirms()
        if confirms.nacked:
            raise PublishError(f"RabbitMQ refused {confirms.nacked} of {len(messages)} messages")
        if confirms.returned:
            raise PublishError(
                f"no queue took {len(confirms.returned)} of {len(messages)} messages "
                f"({confirms.returned[0]})"
            )

    def _wait_for_confirms(self) -> None:
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        while self._confirms.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._reset()
                raise PublishError(f"no confirm within {CONFIRM_TIMEOUT_S:g}s")
            with contextlib.suppress(TimeoutError):
                self._connection.drain_events(timeout=min(remaining, 1.0))

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            self._connection.ensure_connection(max_retries=1)  # reconnects after a reset
            if self._declare:  # whoever connects first creates the topology
                declare_topology(self._connection)
            channel = self._connection.channel()
            channel.confirm_select()
            self._confirms = _Confirms()
            channel.events["basic_ack"].add(self._confirms.on_ack)
            channel.events["basic_nack"].add(self._confirms.on_nack)
            self._producer = Producer(channel, on_return=self._confirms.on_return)
        return self._producer

    def _reset(self) -> None:
        """Forget the channel; the next publish reconnects (kombu re-ensures the connection)."""
        self._producer = None
        with contextlib.suppress(Exception):  # already broken: nothing left to close
            self._connection.close()
