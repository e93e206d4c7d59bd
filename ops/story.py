"""``trackfill job``: one purchase's whole story, from the rows.

Its tracking_jobs (batch, scraping job, status, error, refused values, timings), the API
calls the ledger recorded for them, its next check and whether it was given up, and what
its purchasing row holds now. E-mail addresses are masked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection as Db
from sqlalchemy import Engine, func, or_, select

from ops.errors import Unknown
from shared.db.models import (
    ApiCall,
    OfficialAccount,
    PurchaseCheck,
    Purchasing,
    TrackingBatch,
    TrackingJob,
    holds_order,
)
from shared.domain.masking import mask_email, mask_emails_in
from shared.domain.urls import normalize_order_number


def purchases_of(engine: Engine, order_number: str) -> list[int]:
    """The purchases holding ``order_number`` (as the selection compares it)."""
    order = normalize_order_number(order_number)
    with engine.connect() as db:
        found = db.execute(
            select(Purchasing.id).where(holds_order(order)).order_by(Purchasing.id)
        ).scalars()
        ids = list(found)
    if not ids:
        raise Unknown(f"no purchase has order number {order}")
    return ids


def story(engine: Engine, purchasing_id: int, expire_s: float) -> dict[str, Any]:
    """Everything the database knows about one purchase, JSON-ready."""
    with engine.connect() as db:
        now = db.execute(select(func.now())).scalar_one()
        purchase = _purchase(db, purchasing_id)
        jobs = _jobs(db, purchasing_id)
        return {
            "at": now.isoformat(),
            "purchase": purchase,
            "check": _check(db, purchasing_id, now, expire_s),
            "jobs": jobs,
            "api_calls": _calls(db, jobs),
        }


def _purchase(db: Db, purchasing_id: int) -> dict[str, Any]:
    row = db.execute(
        select(
            Purchasing.id,
            Purchasing.order_number,
            OfficialAccount.email,
            Purchasing.tracking_number,
            Purchasing.latest_delivery_status,
            Purchasing.delivery_status_code,
            Purchasing.shipping_method,
            Purchasing.estimated_delivery_date,
            Purchasing.updated_at,
        )
        .outerjoin(OfficialAccount, OfficialAccount.id == Purchasing.official_account_id)
        .where(Purchasing.id == purchasing_id)
    ).first()
    if row is None:
        raise Unknown(f"no purchase {purchasing_id}")
    return _plain({**row._mapping, "email": mask_email(row.email)})


def _check(db: Db, purchasing_id: int, now: dt.datetime, expire_s: float) -> dict | None:
    row = db.execute(
        select(
            PurchaseCheck.attempts,
            PurchaseCheck.next_check_at,
            PurchaseCheck.last_reason,
            PurchaseCheck.first_attempt_at,
        ).where(PurchaseCheck.purchasing_id == purchasing_id)
    ).first()
    if row is None:
        return None
    expires_at = row.first_attempt_at + dt.timedelta(seconds=expire_s)
    return _plain({**row._mapping, "expires_at": expires_at, "expired": expires_at < now})


def _jobs(db: Db, purchasing_id: int) -> list[dict[str, Any]]:
    rows = db.execute(
        select(
            TrackingJob.id,
            TrackingJob.custom_id,
            TrackingBatch.batch_uuid,
            TrackingJob.scraping_job_id.label("job_id"),  # the output keeps the column's name
            TrackingJob.status,
            TrackingJob.pack_of,
            TrackingJob.error,
            TrackingJob.rejected,
            TrackingJob.publish_attempts,
            TrackingJob.reconcile_count,
            TrackingJob.created_at,
            TrackingJob.published_at,
            TrackingJob.completed_at,
        )
        .join(TrackingBatch, TrackingBatch.id == TrackingJob.batch_id)
        .where(TrackingJob.purchasing_id == purchasing_id)
        .order_by(TrackingJob.id)
    ).all()
    return [_plain(dict(row._mapping)) for row in rows]


def _calls(db: Db, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ledger's calls for these jobs: by custom id (a pack's create carries its
    leader's) or by scraping job id (status checks, problematic URLs, downloads)."""
    custom_ids = [j["custom_id"] for j in jobs]
    leaders = {j["pack_of"] for j in jobs if j["pack_of"]}
    if leaders:
        custom_ids += db.execute(
            select(TrackingJob.custom_id).where(TrackingJob.id.in_(leaders))
        ).scalars()
    job_ids = [j["job_id"] for j in jobs if j["job_id"]]
    if not custom_ids and not job_ids:
        return []
    rows = db.execute(
        select(
            ApiCall.at,
            ApiCall.kind,
            ApiCall.status,
            ApiCall.outcome,
            ApiCall.scraping_job_id.label("job_id"),
        )
        .where(or_(ApiCall.custom_id.in_(custom_ids), ApiCall.scraping_job_id.in_(job_ids)))
        .order_by(ApiCall.at)
        .limit(200)
    ).all()
    return [_plain(dict(row._mapping)) for row in rows]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values: times and dates as ISO text, UUIDs as text, e-mails masked."""
    plain = {}
    for key, value in row.items():
        if isinstance(value, dt.date):
            value = value.isoformat()
        elif isinstance(value, str):
            value = mask_emails_in(value)
        elif value is not None and not isinstance(value, int | float | bool | dict | list):
            value = str(value)
        plain[key] = value
    return plain
