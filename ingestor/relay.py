"""The outbox relay (docs/events.md): publishes the tracking.updated events the ingestor
wrote with its changes, with publisher confirms, and marks them relayed.

The rows are locked while their events are published and marked in the same
transaction: a relay that dies after RabbitMQ confirmed and before its commit leaves
them waiting, and the next relay publishes them again with the same ``id`` (at least
once; consumers deduplicate by ``id``). Two relays never take the same rows at once.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.db import outbox
from shared.db.session import transaction
from shared.faults import crash_point
from shared.logs import TAG
from shared.messaging.publishing import MessagePublisher, Outgoing, PublishError
from shared.messaging.topology import TRACKING_UPDATED
from shared.metrics import EVENTS_RELAYED

log = logging.getLogger("trackfill.relay")
BATCH = 200
POLL_S = 1.0


class OutboxRelay:
    def __init__(self, sessions: sessionmaker[Session], publisher: MessagePublisher):
        self._sessions = sessions
        self._publisher = publisher

    def relay_once(self, limit: int = BATCH) -> int:
        """Publish up to ``limit`` waiting events and mark them relayed; how many.
        Raises :class:`PublishError` (nothing is marked) when RabbitMQ did not take them."""
        with transaction(self._sessions) as session:
            waiting = outbox.take_waiting(session, limit)
            if not waiting:
                return 0
            self._publisher.publish_many(
                [
                    Outgoing(
                        TRACKING_UPDATED,
                        event.routing_key,
                        event.body.encode(),
                        message_id=event.event_id,
                    )
                    for event in waiting
                ]
            )
            crash_point("relay:after-confirm")  # published, not marked: published again
            outbox.mark_relayed(session, [event.id for event in waiting])
        crash_point("relay:after-commit")
        EVENTS_RELAYED.inc(len(waiting))
        return len(waiting)

    def run(self, stop: threading.Event, poll_s: float = POLL_S) -> None:
        """Relay until ``stop`` is set: at once while events wait, else every ``poll_s``;
        then once more, so that the changes committed before the stop leave with it
        (what cannot leave now waits in the outbox for the next relay)."""
        while not stop.is_set():
            if self._relay_logged() < BATCH:
                stop.wait(poll_s)
        while self._relay_logged() == BATCH:
            pass

    def _relay_logged(self) -> int:
        """:meth:`relay_once`, an outage logged (0: nothing relayed)."""
        try:
            return self.relay_once()
        except PublishError as error:
            log.warning("%s relaying tracking.updated failed: %s; again soon", TAG, error)
        except (OperationalError, InterfaceError) as error:  # the database is away
            log.warning("%s the outbox could not be read: %s; again soon", TAG, error)
        return 0
