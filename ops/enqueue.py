"""``trackfill enqueue``: a manual candidate without the management UI.

It publishes the same confirmed ``candidate.found`` an operator could type into the
management UI (docs/contract.md, Messages), and first says what the publisher will do with
it, read from the same rows the publisher reads. A purchase that does not exist, or has
no account e-mail, is refused here: publishing it would only dead-letter it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu import Connection
from sqlalchemy import Connection as Db
from sqlalchemy import Engine, func, select

from ops.errors import Unknown
from ops.status import quota
from shared.contracts import CandidateFound
from shared.db.models import (
    OfficialAccount,
    PurchaseCheck,
    Purchasing,
    TrackingJob,
    holds_order,
)
from shared.db.rechecks import expired_before
from shared.db.statuses import IN_FLIGHT
from shared.domain.masking import mask_email
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import MessagePublisher
from shared.messaging.topology import CANDIDATE_FOUND, declare_topology
from shared.settings import Settings
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK


@dataclass(frozen=True)
class Enqueued:
    request: CandidateFound
    #: what the publisher will do, in a sentence
    outlook: str
    message_id: str = ""


def outlook(engine: Engine, request: CandidateFound, settings: Settings) -> str:
    """What the publisher will do with ``request``; :class:`Unknown` if it would refuse."""
    with engine.connect() as db:
        if request.purchasing_id is not None:
            purchasing_id = _with_email(db, request.purchasing_id)
        else:
            purchasing_id = db.execute(
                select(Purchasing.id)
                .where(holds_order(request.order_number or ""))
                .order_by(Purchasing.id)
                .limit(1)
            ).scalar_one_or_none()
            if purchasing_id is None:
                return (
                    f"no purchase has order number {request.order_number}: a scraping job "
                    "looks it up and its result is kept on the tracking job only"
                )
        return _of_purchase(db, purchasing_id, settings)


def _with_email(db: Db, purchasing_id: int) -> int:
    email = db.execute(
        select(OfficialAccount.email)
        .select_from(Purchasing)
        .outerjoin(OfficialAccount, OfficialAccount.id == Purchasing.official_account_id)
        .where(Purchasing.id == purchasing_id)
    ).first()
    if email is None:
        raise Unknown(f"no purchase {purchasing_id}")
    if not email[0]:
        raise Unknown(f"purchase {purchasing_id} has no account e-mail: nothing to look up with")
    return purchasing_id


def _of_purchase(db: Db, purchasing_id: int, settings: Settings) -> str:
    flight = db.execute(
        select(
            TrackingJob.custom_id,
            TrackingJob.status,
            # a Connection's row names an attribute's column by the column's own name
            TrackingJob.scraping_job_id.label("scraping_job_id"),
        ).where(TrackingJob.purchasing_id == purchasing_id, TrackingJob.status.in_(IN_FLIGHT))
    ).first()
    if flight:
        scraping = f", scraping job {flight.scraping_job_id}" if flight.scraping_job_id else ""
        return (
            f"purchase {purchasing_id} is in flight already ({flight.custom_id}, "
            f"{flight.status}{scraping}): the publisher creates nothing new"
        )
    notes = []
    number = db.execute(
        select(Purchasing.tracking_number).where(Purchasing.id == purchasing_id)
    ).scalar_one()
    if number:
        notes.append(f"it has tracking number {number}, which stays; its status is refreshed")
    given_up = db.execute(
        select(PurchaseCheck.first_attempt_at).where(
            PurchaseCheck.purchasing_id == purchasing_id,
            expired_before(settings.recheck_expire_s),
        )
    ).scalar_one_or_none()
    if given_up is not None:
        notes.append("it was given up (RECHECK_EXPIRE_S passed); this looks once more")
    return (
        f"purchase {purchasing_id}: the publisher creates a scraping job for it when the "
        f"quota allows ({_calls_left(db, settings)} of {settings.api_quota_calls} calls left "
        "in the window)" + "".join(f"; {note}" for note in notes)
    )


def _calls_left(db: Db, settings: Settings) -> int:
    return quota(db, db.execute(select(func.now())).scalar_one(), settings)["left"]


def enqueue(
    engine: Engine, connection: Connection, request: CandidateFound, settings: Settings
) -> Enqueued:
    """Say what will happen, then publish ``request``, confirmed (the topology declared
    first, idempotently: the request waits in its queue even before the publisher's
    first start)."""
    said = outlook(engine, request, settings)
    declare_topology(connection)
    envelope = new_envelope(CANDIDATE_FOUND, request.to_payload())
    MessagePublisher(connection).publish(CANDIDATE_FOUND, request.task, envelope)
    return Enqueued(request, said, envelope.id)


def request_of(
    purchasing_id: int | None, order_number: str | None, email: str | None
) -> CandidateFound:
    """The manual request, as the management UI's form would carry it."""
    payload = {"task": TASK.name}
    if purchasing_id is not None:
        payload["purchasing_id"] = purchasing_id
    else:
        payload |= {"order_number": order_number, "email": email}
    return CandidateFound.parse(payload)


def described(request: CandidateFound) -> str:
    if request.purchasing_id is not None:
        return f"purchase {request.purchasing_id}"
    return f"order {request.order_number} ({mask_email(request.email)})"
