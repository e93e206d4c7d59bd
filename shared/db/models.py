"""SQLAlchemy models of the contract's tables.

The migrations in ``migrations/`` build the schema; a test proves they agree with
these models. Column names are the seed's (Django) names.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    and_,
    func,
    or_,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db.statuses import BATCH_STATUSES, IN_FLIGHT, JOB_STATUSES, BatchStatus, JobStatus
from shared.domain.statuses import DONE_CODES

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created(index: bool = False) -> Mapped[dt.datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False, index=index
    )


def _updated() -> Mapped[dt.datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class OfficialAccount(Base):
    __tablename__ = "official_account"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Purchasing(Base):
    __tablename__ = "purchasing"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_number: Mapped[str | None] = mapped_column(String(64))
    official_account_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("official_account.id", ondelete="SET NULL"), index=True
    )
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    latest_delivery_status: Mapped[str | None] = mapped_column(String(200))
    #: the normalised code of latest_delivery_status, written with it (docs/domain.md)
    delivery_status_code: Mapped[str | None] = mapped_column(String(32))
    #: when a scraped page last gave the status (the refresh task's "last check")
    delivery_status_checked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    shipping_method: Mapped[str | None] = mapped_column(String(200))
    estimated_delivery_date: Mapped[dt.date | None] = mapped_column(Date)
    #: the first day of Apple's estimate, whose last day is estimated_delivery_date
    #: (the Yamato refresh looks on it: docs/schedule.md)
    estimated_delivery_from: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


#: A purchase still lacks a tracking number. The selector's query repeats this exact
#: expression so that PostgreSQL can use the partial index below.
NEEDS_TRACKING = or_(Purchasing.tracking_number.is_(None), Purchasing.tracking_number == "")


def holds_order(order_number: str) -> Any:
    """The purchase's order number is ``order_number`` (normalised: trimmed, upper case)."""
    return func.upper(func.btrim(Purchasing.order_number)) == order_number


Index(
    "ix_purchasing_needs_tracking",
    Purchasing.created_at,
    Purchasing.id,
    postgresql_where=NEEDS_TRACKING,
)


#: A purchase has a number and its status code is not a done one: where the refresh
#: task's candidates are (most purchases end delivered). The refresh's query repeats
#: this exact expression so that PostgreSQL can use the partial index below, in the
#: query's order (oldest check first).
MAY_NEED_REFRESH = and_(
    Purchasing.tracking_number.is_not(None),
    Purchasing.tracking_number != "",
    or_(
        Purchasing.delivery_status_code.is_(None),
        Purchasing.delivery_status_code.not_in(sorted(code.value for code in DONE_CODES)),
    ),
)

Index(
    "ix_purchasing_may_need_refresh",
    Purchasing.delivery_status_checked_at.asc().nulls_first(),
    Purchasing.id,
    postgresql_where=MAY_NEED_REFRESH,
)


class TrackingBatch(Base):
    __tablename__ = "tracking_batch"
    __table_args__ = (CheckConstraint(_in("status", BATCH_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    batch_uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, nullable=False)
    file_path: Mapped[str] = mapped_column(String(255), nullable=False)
    task_name: Mapped[str] = mapped_column(String(100), nullable=False)
    total_jobs: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    completed_jobs: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failed_jobs: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, server_default=BatchStatus.PENDING.value
    )
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class TrackingJob(Base):
    __tablename__ = "tracking_job"
    __table_args__ = (CheckConstraint(_in("status", JOB_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    batch_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tracking_batch.id", ondelete="CASCADE"), nullable=False, index=True
    )
    purchasing_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("purchasing.id", ondelete="SET NULL"), index=True
    )
    custom_id: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    #: the scraper's job id; the contract's column is ``job_id``
    scraping_job_id: Mapped[int | None] = mapped_column("job_id", BigInteger, index=True)
    #: the pack it is published in: its leader's id (the leader's custom_id is the
    #: scraping job's); NULL until the publisher gives it a pack
    pack_of: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tracking_job.id", ondelete="SET NULL"), index=True
    )
    target_url: Mapped[str] = mapped_column(Text, nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, server_default=JobStatus.QUEUED.value
    )
    error: Mapped[str | None] = mapped_column(Text)
    #: create calls tried for this job (the publisher's retry limit)
    publish_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[dt.datetime] = _created()
    #: when its candidate.found was confirmed by RabbitMQ (NULL: publish still owed)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: scraped values that failed validation and were not written: {rule: reason}
    rejected: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    #: when the reconciler looks at it next while it is in flight (NULL: its
    #: RECONCILE_AFTER_S after creation); how many times it has
    reconcile_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    reconcile_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


#: At most one unfinished job per purchase, whoever creates it (selector, manual request).
Index(
    "uq_tracking_job_in_flight_purchase",
    TrackingJob.purchasing_id,
    unique=True,
    postgresql_where=TrackingJob.status.in_(IN_FLIGHT),
)
Index(
    "ix_tracking_job_reconcile_at",
    TrackingJob.reconcile_at,
    postgresql_where=TrackingJob.status.in_(IN_FLIGHT),
)


class PurchaseCheck(Base):
    """When a purchase is looked at next (docs/schedule.md), and what its latest look
    said that the schedule reads."""

    __tablename__ = "purchase_check"

    purchasing_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("purchasing.id", ondelete="CASCADE"), primary_key=True
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    #: None: never again (its story is over)
    next_check_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_reason: Mapped[str | None] = mapped_column(Text)
    #: the latest page's Apple state or carrier status, and Apple's estimate (first and
    #: last day); a look that read no page keeps them
    last_status: Mapped[str | None] = mapped_column(Text)
    estimate_from: Mapped[dt.date | None] = mapped_column(Date)
    estimate_to: Mapped[dt.date | None] = mapped_column(Date)
    #: when its attempts began: its first tracking job's creation (RECHECK_EXPIRE_S after
    #: it, they end: see Giving up)
    first_attempt_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class SyncLog(Base):
    __tablename__ = "sync_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    operation_type: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    success: Mapped[bool] = mapped_column(Boolean, nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    timestamp: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False, index=True
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")


class ProcessedNotification(Base):
    """A job.completed that took effect, written in the same transaction as its effect:
    a redelivered or re-sent notification hits the unique key instead of working twice."""

    __tablename__ = "processed_notification"
    __table_args__ = (UniqueConstraint("scrapingjob_id", "custom_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    #: the contract's column is the webhook's spelling, ``scrapingjob_id``
    scraping_job_id: Mapped[int] = mapped_column("scrapingjob_id", BigInteger, nullable=False)
    custom_id: Mapped[str] = mapped_column(String(100), nullable=False)
    status: Mapped[str] = mapped_column(String(50), nullable=False)
    outcome: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    processed_at: Mapped[dt.datetime] = _created(index=True)


class ApiCall(Base):
    """The quota ledger: one row per call to the scraper's API, reserved before it is made.

    ``at`` is when the call may be made (now, or a planned slot in the future); ``used_at``
    is set just before it is made, ``status``/``outcome`` after. ``kind`` ``external``
    rows stand for calls the API reported that we did not make (another client).
    """

    __tablename__ = "api_call"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    custom_id: Mapped[str | None] = mapped_column(String(100), index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(Text)
    #: for a create answered: the scraping job it made (kept even if we die right after)
    #: the scraping job a call was about (column ``job_id``)
    scraping_job_id: Mapped[int | None] = mapped_column("job_id", BigInteger)


class QuotaState(Base):
    """One row: the API told us to wait (429 Retry-After) until ``blocked_until``."""

    __tablename__ = "api_quota_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = _updated()


class ScrapingJobCost(Base):
    """What one scraping job cost: its pages (distinct start URLs), each one page credit."""

    __tablename__ = "scraping_job_cost"
    __table_args__ = (CheckConstraint("pages >= 0", name="pages_not_negative"),)

    scraping_job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    task_name: Mapped[str] = mapped_column(String(100), nullable=False)
    pages: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = _created(index=True)


class PageCreditReading(Base):
    """The account's page credits as ``GET account`` answered them at ``read_at``."""

    __tablename__ = "page_credit_reading"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    read_at: Mapped[dt.datetime] = _created(index=True)
    page_credits: Mapped[int] = mapped_column(Integer, nullable=False)


class TrackingUpdateOutbox(Base):
    """A tracking.updated event written in the transaction of its change, waiting for the
    relay to publish it (``relayed_at`` None) or kept until pruned (docs/events.md)."""

    __tablename__ = "tracking_update_outbox"
    __table_args__ = (
        Index(
            "ix_tracking_update_outbox_waiting", "id", postgresql_where=text("relayed_at IS NULL")
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    #: the envelope's id, the same on every relay of the event
    event_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    routing_key: Mapped[str] = mapped_column(String(100), nullable=False)
    #: the encoded message, published as it is (its created_at stays the change's)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    relayed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
