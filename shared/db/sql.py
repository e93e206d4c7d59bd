"""SQL pieces the selections share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, cast, exists, func

from shared.db.models import Purchasing, TrackingJob
from shared.db.statuses import IN_FLIGHT


def seconds(value: Any) -> ColumnElement:
    """``value`` seconds (a number or a SQL expression) as an interval."""
    return func.make_interval(0, 0, 0, 0, 0, 0, cast(value, Float))


def job_in_flight() -> ColumnElement[bool]:
    """The purchase has a job of any task in flight."""
    return exists().where(
        TrackingJob.purchasing_id == Purchasing.id, TrackingJob.status.in_(IN_FLIGHT)
    )
