"""The outbox of tracking.updated events (docs/events.md): an event is written in the
transaction of its change, and the relay publishes it after that commits, so a change
rolled back publishes nothing and a committed one is published at least once, its id
the same on every relay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.orm import Session

from shared.contracts import TrackingUpdated
from shared.db.models import TrackingUpdateOutbox
from shared.messaging.envelope import new_envelope

outbox = TrackingUpdateOutbox.__table__


@dataclass(frozen=True)
class Waiting:
    """An event not relayed yet: its row, envelope id, routing key and encoded body."""

    id: int
    event_id: str
    routing_key: str
    body: str


def add(session: Session, event: TrackingUpdated) -> str:
    """Write ``event`` into the outbox in ``session``'s transaction; its envelope id."""
    envelope = new_envelope(TrackingUpdated.KIND, event.to_payload())
    session.execute(
        insert(outbox).values(
            event_id=envelope.id, routing_key=event.task, body=envelope.encode().decode()
        )
    )
    return envelope.id


def take_waiting(session: Session, limit: int) -> list[Waiting]:
    """Up to ``limit`` events not relayed yet, oldest first, locked for this transaction
    (another relay skips them: two replicas never publish the same rows at once)."""
    rows = session.execute(
        select(outbox.c.id, outbox.c.event_id, outbox.c.routing_key, outbox.c.body)
        .where(outbox.c.relayed_at.is_(None))
        .order_by(outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    return [Waiting(*row) for row in rows]


def mark_relayed(session: Session, ids: list[int]) -> None:
    session.execute(update(outbox).where(outbox.c.id.in_(ids)).values(relayed_at=func.now()))


def figures(db: Session | Connection) -> dict[str, Any]:
    """For ``trackfill status``: the events waiting to be relayed (a relay that is down
    shows here), when the oldest of them was written, and those relayed and kept."""
    waiting, oldest, relayed = db.execute(
        select(
            func.count().filter(outbox.c.relayed_at.is_(None)),
            func.min(outbox.c.created_at).filter(outbox.c.relayed_at.is_(None)),
            func.count().filter(outbox.c.relayed_at.is_not(None)),
        )
    ).one()
    return {
        "waiting": waiting,
        "oldest_waiting_at": oldest.isoformat() if oldest else None,
        "relayed_kept": relayed,
    }
