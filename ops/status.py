"""What is going on, at a glance: batches, jobs in flight, the quota, the credits, the
events waiting for their relay, queues, sync_log.

The database's view and the broker's are read apart: with RabbitMQ down, the database
still answers, and ``trackfill status`` shows what it knows.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from amqp.exceptions import NotFound
from kombu import Connection
from sqlalchemy import Connection as Db
from sqlalchemy import Engine, String, cast, func, select

from ops.errors import Unknown
from shared.db import outbox
from shared.db.credits import overview as credit_figures
from shared.db.jobs import StatusCount, by_status, jobs_by_task
from shared.db.models import ApiCall, QuotaState, SyncLog, TrackingBatch, TrackingJob
from shared.db.rechecks import count_expired
from shared.db.statuses import IN_FLIGHT, JobStatus
from shared.messaging.topology import ROUTES, all_queues
from shared.quota import QuotaPolicy, creations_by_prefix, in_window
from shared.settings import Settings
from shared.tasks import TRACKING_TASK_CONFIGS

#: queues a service must be consuming; one without a consumer is flagged
CONSUMED = frozenset(name for route in ROUTES.values() for name in route.consumed)
_UUID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9a-f]{8}")


def batch_key(text: str) -> str:
    """A batch as the operator gives it: a full UUID or its first 8 hex digits (as the
    status table shows it). ValueError for anything else."""
    key = text.strip().lower()
    if not _UUID.fullmatch(key):
        raise ValueError(f"not a batch UUID or its 8-hex prefix: {text!r}")
    return key


def find_batch(db: Db, key: str) -> uuid.UUID:
    """The one batch ``key`` (from :func:`batch_key`) names; :class:`Unknown` if none
    or, for a prefix, more than one."""
    if len(key) > 8:
        found = db.execute(
            select(TrackingBatch.batch_uuid).where(TrackingBatch.batch_uuid == uuid.UUID(key))
        ).scalars()
    else:
        found = db.execute(
            select(TrackingBatch.batch_uuid)
            .where(cast(TrackingBatch.batch_uuid, String).startswith(key))
            .limit(2)
        ).scalars()
    matches = list(found)
    if not matches:
        raise Unknown(f"no batch {key}")
    if len(matches) > 1:
        raise Unknown(f"more than one batch starts with {key}: give the full UUID")
    return matches[0]


def overview(engine: Engine, settings: Settings) -> dict[str, Any]:
    """The database's part of ``trackfill status``, as JSON-ready data."""
    with engine.connect() as db:
        now = db.execute(select(func.now())).scalar_one()
        flight = jobs_by_task(db, only=IN_FLIGHT)
        return {
            "at": now.isoformat(),
            "batches": _batches(db),
            "jobs_in_flight": _in_flight(flight, settings.reconcile_after_s),
            #: purchases given up, still without a tracking number (docs/giving-up.md)
            "expired": count_expired(db, settings.recheck_expire_s),
            "quota": quota(db, now, settings),
            "credits": credit_figures(db, now, settings.page_credits_reserve),
            #: tracking.updated events not yet relayed (docs/events.md)
            "events": outbox.figures(db),
            "tasks": tasks(db, now, settings, flight),
            "sync_log": _sync_log(db),
        }


def tasks(
    db: Db, now: dt.datetime, settings: Settings, flight: dict[tuple[str, str], StatusCount]
) -> list[dict[str, Any]]:
    """Each task of the registry: on or off, its jobs in flight (``flight``, by task and
    status), its creations in the current quota window and its last selection pass."""
    made = creations_by_prefix(db, in_window(ApiCall.at, now, QuotaPolicy.of(settings).span))
    last = dict(
        db.execute(
            select(SyncLog.operation_type, func.max(SyncLog.timestamp)).group_by(
                SyncLog.operation_type
            )
        ).all()
    )
    untaken = dict(
        db.execute(
            select(TrackingBatch.task_name, func.count())
            .join(TrackingJob, TrackingJob.batch_id == TrackingBatch.id)
            .where(
                TrackingJob.status == JobStatus.QUEUED,
                TrackingJob.pack_of.is_(None),
                TrackingJob.reconcile_count > 0,
            )
            .group_by(TrackingBatch.task_name)
        ).all()
    )
    return [
        {
            "task": task.name,
            "enabled": task.sitemap_in(settings) is not None,
            "sitemap_id": task.sitemap_in(settings),
            "in_flight": sum(j.count for (name, _), j in flight.items() if name == task.name),
            #: queued jobs re-sent by the reconciler and still in no pack: no publisher
            #: takes them (the reconciler ends them after UNTAKEN_RESENDS re-sends)
            "untaken": untaken.get(task.name, 0),
            "creations_in_window": made.get(task.custom_id_prefix, 0),
            "last_pass": last[task.triggered].isoformat() if task.triggered in last else None,
        }
        for task in TRACKING_TASK_CONFIGS.values()
    ]


def _batches(db: Db) -> list[dict[str, Any]]:
    rows = db.execute(
        select(
            TrackingBatch.batch_uuid,
            TrackingBatch.task_name,
            TrackingBatch.status,
            TrackingBatch.total_jobs,
            TrackingBatch.completed_jobs,
            TrackingBatch.failed_jobs,
            TrackingBatch.created_at,
        )
        .order_by(TrackingBatch.id.desc())
        .limit(10)
    ).all()
    return [
        {
            **row._mapping,
            "batch_uuid": str(row.batch_uuid),
            "created_at": row.created_at.isoformat(),
        }
        for row in rows
    ]


def _in_flight(
    by_task: dict[tuple[str, str], StatusCount], reconcile_after_s: float
) -> dict[str, Any]:
    flight = {}
    for status, jobs in by_status(by_task).items():
        age = round(jobs.oldest_age_s, 1)
        flight[status] = {"count": jobs.count, "oldest_age_s": age, "late": age > reconcile_after_s}
    return flight


def quota(db: Db, now: dt.datetime, settings: Settings) -> dict[str, Any]:
    """The calls of the current quota window, by kind, and whether a 429 blocks us."""
    policy = QuotaPolicy.of(settings)
    span = policy.span
    calls = dict(
        db.execute(
            select(ApiCall.kind, func.count())
            .where(in_window(ApiCall.at, now, span))
            .group_by(ApiCall.kind)
        ).all()
    )
    blocked = db.execute(select(QuotaState.blocked_until)).scalar_one_or_none()
    used = sum(calls.values())
    return {
        "window_s": settings.api_quota_window_s,
        "span_s": policy.span_s,
        "calls": settings.api_quota_calls,
        "used": used,
        "left": max(0, settings.api_quota_calls - used),
        "by_kind": calls,
        "blocked_until": blocked.isoformat() if blocked and blocked > now else None,
    }


def _sync_log(db: Db) -> list[dict[str, Any]]:
    rows = db.execute(
        select(SyncLog.timestamp, SyncLog.operation_type, SyncLog.success, SyncLog.message)
        .order_by(SyncLog.id.desc())
        .limit(5)
    ).all()
    return [{**row._mapping, "timestamp": row.timestamp.isoformat()} for row in rows]


def queue_depths(connection: Connection) -> dict[str, dict[str, Any]]:
    """Ready messages and consumers of every queue (passive declares: nothing changes).
    A queue no service has declared yet counts as empty; a consumer queue without a
    consumer is flagged ``unconsumed``."""
    depths = {}
    for queue in all_queues():
        with connection.channel() as channel:
            try:
                _, messages, consumers = channel.queue_declare(queue.name, passive=True)
                declared = True
            except NotFound:
                messages, consumers, declared = 0, 0, False
        depths[queue.name] = {
            "messages": messages,
            "consumers": consumers,
            "declared": declared,
            "unconsumed": queue.name in CONSUMED and consumers == 0,
        }
    return depths


def batch_jobs(engine: Engine, key: str) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """The batch ``key`` names, and its jobs with their status and reasons."""
    with engine.connect() as db:
        batch_uuid = find_batch(db, key)
        rows = db.execute(
            select(
                TrackingJob.custom_id,
                TrackingJob.purchasing_id,
                TrackingJob.scraping_job_id.label("job_id"),  # the output's name is the column's
                TrackingJob.status,
                TrackingJob.error,
                TrackingJob.rejected,
            )
            .join(TrackingBatch, TrackingBatch.id == TrackingJob.batch_id)
            .where(TrackingBatch.batch_uuid == batch_uuid)
            .order_by(TrackingJob.index)
        ).all()
    return batch_uuid, [dict(row._mapping) for row in rows]
