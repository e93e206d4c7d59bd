"""Confirmed, persistent publishing.

Every connection is opened with publisher confirms, so :meth:`MessagePublisher.publish`
returns only once RabbitMQ has taken responsibility for the message; a nack, or a
``mandatory`` message that no queue took, raises :class:`PublishError`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

from kombu import Connection, Exchange, Producer
from kombu.transport.pyamqp import Transport as AmqpTransport

from shared.messaging.envelope import Envelope
from shared.messaging.topology import DEAD_LETTER_EXCHANGE, declare_topology

REASON_HEADER = "x-trackfill-reason"
ORIGIN_QUEUE_HEADER = "x-trackfill-origin-queue"


def _where(exchange: str, routing_key: str) -> str:
    return f"{exchange or '(default)'}/{routing_key}"


class PublishError(RuntimeError):
    """RabbitMQ did not take the message (nack, no route, or the connection failed)."""


def connect(amqp_url: str, heartbeat_s: float = 30, connect_timeout_s: float = 5) -> Connection:
    """A kombu connection with publisher confirms and heartbeats (kombu's default is off)."""
    heartbeat = max(1, round(heartbeat_s)) if heartbeat_s > 0 else 0
    return Connection(
        amqp_url,
        heartbeat=heartbeat,
        connect_timeout=connect_timeout_s,
        transport_options={"confirm_publish": True},
    )


class MessagePublisher:
    """Publishes on one channel of ``connection``; not thread-safe (one per thread)."""

    def __init__(self, connection: Connection, declare: bool = True):
        self._connection = connection
        self._declare = declare
        self._producer: Producer | None = None
        self._returned: list[str] = []

    def publish(
        self,
        exchange: str,
        routing_key: str,
        envelope: Envelope,
        *,
        mandatory: bool = True,
        expiration_s: float | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish ``envelope`` persistently and wait for the broker's confirm."""
        self.publish_raw(
            exchange,
            routing_key,
            envelope.encode(),
            mandatory=mandatory,
            expiration_s=expiration_s,
            headers=headers,
            message_id=envelope.id,
        )

    def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        mandatory: bool = True,
        expiration_s: float | None = None,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Publish bytes as they are (dead letters keep their original body)."""
        options = dict(
            exchange=Exchange(exchange) if exchange else "",
            routing_key=routing_key,
            content_type=content_type,
            content_encoding="utf-8",
            delivery_mode=2,
            mandatory=mandatory,
            expiration=expiration_s,
            headers=dict(headers or {}),
            message_id=message_id,
            declare=[],
        )
        self._returned.clear()
        for attempt in (1, 2):
            try:
                self._ensure_producer().publish(body, **options)
                break
            except (OSError, *AmqpTransport.connection_errors) as error:
                # a connection that died while idle: reconnect once (a duplicate is possible
                # if the broker had confirmed; every consumer is idempotent)
                self._reset()
                if attempt == 2:
                    raise PublishError(
                        f"publish to {_where(exchange, routing_key)} failed: {error!r}"
                    ) from error
            except Exception as error:
                self._reset()
                raise PublishError(
                    f"publish to {_where(exchange, routing_key)} failed: {error!r}"
                ) from error
        if self._returned:
            raise PublishError(
                f"no queue took the message on {_where(exchange, routing_key)}: {self._returned[0]}"
            )

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

    def _reset(self) -> None:
        """Forget the channel; the next publish reconnects (kombu re-ensures the connection)."""
        self._producer = None
        with contextlib.suppress(Exception):  # already broken: nothing left to close
            self._connection.close()

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            if self._declare:  # whoever connects first creates the topology
                declare_topology(self._connection)
            channel = self._connection.default_channel
            self._producer = Producer(channel, on_return=self._on_return)
        return self._producer

    def _on_return(self, exception: Exception, exchange: str, routing_key: str, message: Any):
        self._returned.append(str(exception))
