"""What a consumer's handler gets and may raise: a delivery, and the errors that decide
its fate (see :mod:`shared.messaging.consuming`, which acts on them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kombu.transport.pyamqp import Transport as AmqpTransport
from sqlalchemy.exc import InterfaceError, OperationalError

from shared.messaging.envelope import Envelope
from shared.messaging.publishing import MessagePublisher, PublishError
from shared.metrics import PARKINGS


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
#: one outcome per delivery, in order: None (done) or the exception it ended with
GroupHandler = Callable[[list[Delivery]], list[BaseException | None]]


#: Errors of a lost or refused broker connection.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, *AmqpTransport.connection_errors)
_TRANSIENT = (Transient, PublishError, OperationalError, InterfaceError, *CONNECTION_ERRORS)


def is_transient(error: BaseException) -> bool:
    """An outage of a dependency (database, broker) rather than a problem of the message."""
    return isinstance(error, _TRANSIENT)


def one_at_a_time(handler: Handler) -> GroupHandler:
    """``handler`` as a group handler, for groups of one."""

    def handle(deliveries: list[Delivery]) -> list[BaseException | None]:
        (delivery,) = deliveries
        try:
            handler(delivery)
        except BaseException as error:  # noqa: BLE001 - the outcome, as a future keeps it
            return [error]
        return [None]

    return handle
