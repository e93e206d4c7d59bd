"""The gateway's way into RabbitMQ: one confirm-mode publisher per server thread
(a kombu connection is not thread-safe), each connected on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable

from kombu import Connection

from shared.messaging.envelope import Envelope
from shared.messaging.publishing import MessagePublisher


class ThreadPublishers:
    def __init__(self, connect: Callable[[], Connection]):
        self._connect = connect
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()

    def _publisher(self) -> MessagePublisher:
        publisher = getattr(self._local, "publisher", None)
        if publisher is None:
            connection = self._connect()
            with self._lock:
                self._connections.append(connection)
            publisher = self._local.publisher = MessagePublisher(connection)
        return publisher

    def publish(self, exchange: str, routing_key: str, envelope: Envelope) -> None:
        """Publish and wait for the confirm; :class:`PublishError` if RabbitMQ did not
        take it."""
        self._publisher().publish(exchange, routing_key, envelope)

    def check(self) -> None:
        """:class:`PublishError` unless RabbitMQ can be reached."""
        self._publisher().ensure_ready()

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.release()
            self._connections.clear()
