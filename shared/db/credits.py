"""Page credits (docs/credits.md): what each scraping job cost, the account's credits as
last read, and the figures ``trackfill status`` and the metrics show.

A scraping job costs one credit per start URL: its pages are the distinct target URLs of
the tracking jobs that carry it, recorded once when its id is stored on them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, distinct, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import (
    PageCreditReading,
    Purchasing,
    ScrapingJobCost,
    TrackingBatch,
    TrackingJob,
)
from shared.db.statuses import JobStatus
from shared.tasks import TRACKING_TASK_CONFIGS

#: the day of "spent today" is Japan's: the account's and the shop's
TOKYO = dt.timezone(dt.timedelta(hours=9))
#: the rate that predicts the day the credits run out: the spending of the last 7 days
RATE_DAYS = 7
#: the tasks whose credits are spent on finding numbers: "per filled purchase" is theirs
SEEKING = tuple(task.name for task in TRACKING_TASK_CONFIGS.values() if task.seeks_number)


def record_cost(session: Session, scraping_job_id: int, task_name: str) -> int | None:
    """Record what scraping job ``scraping_job_id`` cost (its distinct start URLs among
    the tracking jobs that carry it), once: the pages, or None if already recorded."""
    pages = select(
        literal(scraping_job_id), literal(task_name), func.count(distinct(TrackingJob.target_url))
    ).where(TrackingJob.scraping_job_id == scraping_job_id)
    return session.execute(
        insert(ScrapingJobCost)
        .from_select(["scraping_job_id", "task_name", "pages"], pages)
        .on_conflict_do_nothing(index_elements=["scraping_job_id"])
        .returning(ScrapingJobCost.pages)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class Reading:
    page_credits: int
    read_at: dt.datetime


def latest_reading(db: Session | Connection) -> Reading | None:
    row = db.execute(
        select(PageCreditReading.page_credits, PageCreditReading.read_at)
        .order_by(PageCreditReading.read_at.desc(), PageCreditReading.id.desc())
        .limit(1)
    ).first()
    return Reading(row.page_credits, row.read_at) if row else None


def spent_since(db: Session | Connection, since: dt.datetime) -> dict[str, int]:
    """Credits spent since ``since``, by task."""
    rows = db.execute(
        select(ScrapingJobCost.task_name, func.sum(ScrapingJobCost.pages))
        .where(ScrapingJobCost.created_at >= since)
        .group_by(ScrapingJobCost.task_name)
    ).all()
    return {task: int(pages) for task, pages in rows}


def filled_since(db: Session | Connection, since: dt.datetime) -> int:
    """Purchases that a number-seeking task looked at since ``since`` and that have their
    number now (a filled purchase is not looked at for its number again: counted once)."""
    return db.execute(
        select(func.count(distinct(TrackingJob.purchasing_id)))
        .join(Purchasing, Purchasing.id == TrackingJob.purchasing_id)
        .join(TrackingBatch, TrackingBatch.id == TrackingJob.batch_id)
        .where(
            TrackingJob.completed_at >= since,
            TrackingJob.status == JobStatus.COMPLETED,
            Purchasing.tracking_number.is_not(None),
            TrackingBatch.task_name.in_(SEEKING),
        )
    ).scalar_one()


def overview(db: Session | Connection, now: dt.datetime, reserve: int) -> dict[str, Any]:
    """The ``credits`` part of ``trackfill status``: left (as last read), spent today
    (Tokyo's day) and in 30 days per task, per filled purchase (30 days), and the day
    they run out at the rate of the last 7 days (None: nothing spent, or never read)."""
    today = now.astimezone(TOKYO).replace(hour=0, minute=0, second=0, microsecond=0)
    month = spent_since(db, now - dt.timedelta(days=30))
    seeking = sum(month.get(name, 0) for name in SEEKING)
    filled = filled_since(db, now - dt.timedelta(days=30))
    reading = latest_reading(db)
    per_day = sum(spent_since(db, now - dt.timedelta(days=RATE_DAYS)).values()) / RATE_DAYS
    return {
        "left": reading.page_credits if reading else None,
        "read_at": reading.read_at.isoformat() if reading else None,
        "reserve": reserve,
        "at_reserve": reading is not None and reading.page_credits <= reserve,
        "today": spent_since(db, today),
        "last_30_days": month,
        "filled_30_days": filled,
        "per_filled": round(seeking / filled, 2) if filled else None,
        "per_day": round(per_day, 1),
        "days_left": days_left(reading, per_day),
        "run_out_on": _run_out_on(reading, per_day, now),
    }


def days_left(reading: Reading | None, per_day: float) -> float | None:
    if reading is None or per_day <= 0:
        return None
    return round(max(reading.page_credits, 0) / per_day, 1)


def _run_out_on(reading: Reading | None, per_day: float, now: dt.datetime) -> str | None:
    left = days_left(reading, per_day)
    if left is None:
        return None
    return (now + dt.timedelta(days=left)).astimezone(TOKYO).date().isoformat()


class CreditFigures(Collector):
    """The credits as last read, the reserve, the days left at the last 7 days' rate, and
    the credits spent per task (the recorded cost of every scraping job)."""

    def __init__(self, sessions: sessionmaker[Session], reserve: int):
        self._sessions = sessions
        self._reserve = reserve

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with self._sessions() as session:
            now = session.execute(select(func.now())).scalar_one()
            reading = latest_reading(session)
            spent = spent_since(session, dt.datetime.min.replace(tzinfo=dt.UTC))
            week = sum(spent_since(session, now - dt.timedelta(days=RATE_DAYS)).values())
        if reading is not None:
            yield GaugeMetricFamily(
                "trackfill_page_credits_remaining",
                "The account's page credits as last read (GET account)",
                value=reading.page_credits,
            )
            left = days_left(reading, week / RATE_DAYS)
            if left is not None:
                yield GaugeMetricFamily(
                    "trackfill_page_credits_days_left",
                    "Days until the page credits run out at the last 7 days' rate",
                    value=left,
                )
        yield GaugeMetricFamily(
            "trackfill_page_credits_reserve",
            "The setting PAGE_CREDITS_RESERVE: at or below it only manual candidates are scraped",
            value=self._reserve,
        )
        counter = CounterMetricFamily(
            "trackfill_page_credits_spent",
            "Page credits spent, by task (each scraping job's pages)",
            labels=["task"],
        )
        for task in TRACKING_TASK_CONFIGS:
            counter.add_metric([task], spent.get(task, 0))
        yield counter
