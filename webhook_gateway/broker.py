"""The gateway's way into RabbitMQ: one publishing thread that confirms in groups.

A confirm from a quorum queue costs a disk sync, a few milliseconds; paid once per request
it caps the gateway far below what Flask can serve. So the server threads hand their
message to one publisher thread (a kombu connection is not thread-safe anyway), which sends
everything waiting, then waits once for all the confirms; each request waits for its own
message's outcome only. A request still answers 2xx only after RabbitMQ confirmed it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from kombu import Connection

from shared.messaging.envelope import Envelope
from shared.messaging.publishing import MessagePublisher, Outgoing, PublishError

log = logging.getLogger("trackfill.gateway")
MAX_GROUP = 200
_CHECK = object()


class GroupPublisher:
    def __init__(self, connect: Callable[[], Connection], answer_within_s: float = 8.0):
        self._connect = connect
        self._answer_within_s = answer_within_s
        self._inbox: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self._closed = threading.Event()

    def publish(self, exchange: str, routing_key: str, envelope: Envelope) -> None:
        """Publish and wait for the confirm; :class:`PublishError` if RabbitMQ did not
        take it (or not within the time the sender waits for an answer)."""
        self._submit(Outgoing.of(exchange, routing_key, envelope))

    def check(self) -> None:
        """:class:`PublishError` unless RabbitMQ can be reached."""
        self._submit(_CHECK)

    def close(self) -> None:
        self._closed.set()
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(10)

    def _submit(self, item: object) -> None:
        self._ensure_thread()
        done: Future = Future()
        self._inbox.put((item, done))
        try:
            done.result(timeout=self._answer_within_s)
        except TimeoutError:
            raise PublishError(f"no confirm within {self._answer_within_s:g}s") from None

    def _ensure_thread(self) -> None:
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="gateway-publisher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        connection = self._connect()
        publisher = MessagePublisher(connection)
        try:
            while not self._closed.is_set():
                group = self._next_group()
                if group:
                    self._send(publisher, group)
        finally:
            connection.release()

    def _next_group(self) -> list[tuple[object, Future]]:
        """Everything waiting now (at least one item; blocks until there is one)."""
        first = self._inbox.get()
        if first is None:
            return []
        group = [first]
        while len(group) < MAX_GROUP:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._closed.set()
                break
            group.append(item)
        return group

    def _send(self, publisher: MessagePublisher, group: list[tuple[object, Future]]) -> None:
        messages = [item for item, _ in group if item is not _CHECK]
        try:
            publisher.ensure_ready()
            publisher.publish_many(messages)  # type: ignore[arg-type]
        except PublishError as error:
            log.warning("publishing %d webhook messages failed: %s", len(messages), error)
            for _, done in group:
                done.set_exception(error)
            return
        for _, done in group:
            done.set_result(None)
