"""The ingestor's statements, built once with named parameters.

Each job runs these; building a SQLAlchemy statement and computing its cache key costs
more Python than PostgreSQL spends running it, so they are built at import and only
executed per job (bench/ingest.py measures the difference). Parameters are named
``p_<name>``: SQLAlchemy reserves a column's own name in an INSERT or UPDATE.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, String, any_, bindparam, case, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert

from shared.contracts import TOLD_FIELDS
from shared.db.jobs import select_jobs
from shared.db.models import ProcessedNotification, Purchasing, TrackingBatch, TrackingJob
from shared.db.statuses import IN_FLIGHT

jobs = TrackingJob.__table__
batches = TrackingBatch.__table__
processed = ProcessedNotification.__table__
purchases = Purchasing.__table__

#: the notifications' jobs, by custom_id and by scraping job id (every job of a pack
#: shares its scraping job), each with whether it was processed for its stored scraping
#: job id (any other id is refused before it matters)
FIND_JOBS = (
    select_jobs(
        select(processed.c.id)
        .where(processed.c.custom_id == jobs.c.custom_id)
        .where(processed.c.scrapingjob_id == jobs.c.job_id)
        .exists()
        .label("processed"),
        # the purchase's number: a Japan Post page's record is matched by it
        purchases.c.tracking_number.label("purchase_number"),
    )
    .outerjoin(purchases, purchases.c.id == jobs.c.purchasing_id)
    .where(
        (jobs.c.custom_id == any_(bindparam("p_custom_ids", type_=ARRAY(String()))))
        | (jobs.c.job_id == any_(bindparam("p_job_ids", type_=ARRAY(BigInteger()))))
    )
)

#: the processed mark (unique per job id and custom_id): a row only the first time
MARK_PROCESSED = (
    insert(processed)
    .values(
        scrapingjob_id=bindparam("p_scrapingjob_id"),
        custom_id=bindparam("p_custom_id"),
        status=bindparam("p_status"),
        outcome=bindparam("p_outcome"),
    )
    .on_conflict_do_nothing()
    .returning(processed.c.id)
)

#: the job's status under its row lock, and its age
LOCK_JOB = (
    select(jobs.c.status, func.now() - jobs.c.created_at)
    .where(jobs.c.id == bindparam("p_job_id"))
    .with_for_update()
)

END_JOB = (
    update(jobs)
    .where(jobs.c.id == bindparam("p_job_id"))
    .values(
        status=bindparam("p_status"),
        error=bindparam("p_error"),
        rejected=bindparam("p_rejected", type_=jobs.c.rejected.type),
        completed_at=func.now(),
    )
)


def _keep_or(column, name):
    return func.coalesce(bindparam(f"p_{name}", type_=column.type), column)


_checked = purchases.c.delivery_status_checked_at
_empty = func.coalesce(purchases.c.tracking_number, "") == ""

_before = (
    select(purchases.c.id, *(purchases.c[name].label(f"old_{name}") for name in TOLD_FIELDS))
    .where(purchases.c.id == bindparam("p_purchasing_id"))
    .with_for_update()
    .subquery("before")
)

#: the scraped values that are valid (None keeps a column as it is); the tracking number
#: only where none is set: never overwrite a number someone else wrote. Returns the
#: reported columns before (``old_<name>``) and after, and the order number.
FILL_PURCHASE = (
    update(purchases)
    .where(purchases.c.id == _before.c.id)
    .values(
        tracking_number=case(
            (_empty, _keep_or(purchases.c.tracking_number, "tracking_number")),
            else_=purchases.c.tracking_number,
        ),
        latest_delivery_status=_keep_or(purchases.c.latest_delivery_status, "delivery_status"),
        # written with the status, never apart from it (both None or both set)
        delivery_status_code=_keep_or(purchases.c.delivery_status_code, "delivery_status_code"),
        delivery_status_checked_at=case(
            (bindparam("p_delivery_status", type_=String()).is_(None), _checked),
            else_=func.now(),
        ),
        shipping_method=_keep_or(purchases.c.shipping_method, "shipping_method"),
        # the estimate's two days, written together (both None or both set)
        estimated_delivery_date=_keep_or(
            purchases.c.estimated_delivery_date, "estimated_delivery_date"
        ),
        estimated_delivery_from=_keep_or(
            purchases.c.estimated_delivery_from, "estimated_delivery_from"
        ),
    )
    .returning(
        purchases.c.order_number,
        *(purchases.c[name] for name in TOLD_FIELDS),
        *(_before.c[f"old_{name}"] for name in TOLD_FIELDS),
    )
)

#: a scraping job the API could not be asked about (an outage) stays open: the
#: reconciler looks at it again after a back-off that doubles per look, at most
#: ``p_max_s`` (its hint is confirmed with the API like a webhook)
LOOK_LATER = (
    update(jobs)
    .where(
        jobs.c.job_id == bindparam("p_scrapingjob_id"),
        jobs.c.status.in_(IN_FLIGHT),
    )
    .values(
        reconcile_at=func.now()
        + func.make_interval(
            0,
            0,
            0,
            0,
            0,
            0,
            func.least(
                bindparam("p_base_s", type_=Float()) * func.power(2, jobs.c.reconcile_count),
                bindparam("p_max_s", type_=Float()),
            ),
        ),
        reconcile_count=jobs.c.reconcile_count + 1,
    )
    .returning(jobs.c.reconcile_at)
)
