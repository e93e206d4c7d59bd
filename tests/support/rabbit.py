"""A small client of RabbitMQ's management HTTP API, for vhosts and inspection."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests


class Management:
    def __init__(self, url: str):
        parts = urlsplit(url)
        self.auth = (parts.username or "guest", parts.password or "guest")
        netloc = f"{parts.hostname}:{parts.port or 15672}"
        self.base = urlunsplit((parts.scheme, netloc, "/api/", "", ""))
        self.http = requests.Session()
        self.http.auth = self.auth

    def _url(self, *parts: str) -> str:
        return self.base + "/".join(quote(p, safe="") for p in parts)

    def create_vhost(self, vhost: str) -> None:
        self.http.put(self._url("vhosts", vhost), timeout=10).raise_for_status()
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        self.http.put(
            self._url("permissions", vhost, self.auth[0]), json=permissions, timeout=10
        ).raise_for_status()

    def delete_vhost(self, vhost: str) -> None:
        self.http.delete(self._url("vhosts", vhost), timeout=30)

    def queue(self, vhost: str, name: str) -> dict[str, Any]:
        answer = self.http.get(self._url("queues", vhost, name), timeout=10)
        answer.raise_for_status()
        return answer.json()

    def queues(self, vhost: str) -> list[dict[str, Any]]:
        return self.http.get(self._url("queues", vhost), timeout=10).json()

    def exchanges(self, vhost: str) -> list[dict[str, Any]]:
        return self.http.get(self._url("exchanges", vhost), timeout=10).json()

    def bindings(self, vhost: str) -> list[dict[str, Any]]:
        return self.http.get(self._url("bindings", vhost), timeout=10).json()

    def publish(
        self,
        vhost: str,
        exchange: str,
        routing_key: str,
        payload: str,
        properties: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What the UI's "Publish message" form does: a string payload."""
        body = {
            "properties": properties or {},
            "routing_key": routing_key,
            "payload": payload,
            "payload_encoding": "string",
        }
        name = exchange or "amq.default"
        answer = self.http.post(
            self._url("exchanges", vhost, name, "publish"), json=body, timeout=10
        )
        answer.raise_for_status()
        return answer.json()

    def get_messages(self, vhost: str, queue: str, count: int = 100) -> list[dict[str, Any]]:
        """Read messages without losing them (they are requeued)."""
        body = {"count": count, "ackmode": "ack_requeue_true", "encoding": "auto"}
        answer = self.http.post(self._url("queues", vhost, queue, "get"), json=body, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def wait_for_messages(
        self, vhost: str, queue: str, count: int, timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Poll until ``queue`` holds at least ``count`` messages; return them."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.get_messages(vhost, queue, max(count, 100))
            if len(messages) >= count or time.monotonic() > deadline:
                return messages
            time.sleep(0.1)


def payload_json(message: dict[str, Any]) -> Any:
    """The JSON body of a message read through the management API."""
    payload = message["payload"]
    if message.get("payload_encoding") == "base64":
        payload = base64.b64decode(payload).decode()
    return json.loads(payload)


def queue_counts(amqp_url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of ``queue`` now, by an independent client (pika);
    (0, 0) if it does not exist. The management API's counts lag by seconds."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        method = connection.channel().queue_declare(queue, passive=True).method
        return method.message_count, method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0, 0
    finally:
        if connection.is_open:
            connection.close()


def take_bodies(amqp_url: str, queue: str, idle_s: float = 0.5) -> list[Any]:
    """The messages of ``queue``, taken (acked) by an independent client (pika) until
    none comes for ``idle_s``: their JSON bodies. A consumer, not basic.get, which
    quorum queues with a single active consumer refuse."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel, bodies = connection.channel(), []
        for method, _, body in channel.consume(queue, inactivity_timeout=idle_s):
            if method is None:
                return bodies
            channel.basic_ack(method.delivery_tag)
            bodies.append(json.loads(body))
    finally:
        connection.close()
    return bodies
