"""What is going on, at a glance: batches, jobs in flight, the quota, queues, sync_log."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from kombu import Connection
from sqlalchemy import Engine, func, select

from shared.db.models import ApiCall, QuotaState, SyncLog, TrackingBatch, TrackingJob
from shared.db.rechecks import count_expired
from shared.db.statuses import IN_FLIGHT
from shared.messaging.topology import all_queues
from shared.settings import Settings
from shared.webscraper.quota import QuotaPolicy
from shared.webscraper.windows import in_window


def overview(engine: Engine, connection: Connection | None, settings: Settings) -> dict[str, Any]:
    """Everything ``trackfill status`` shows, as JSON-ready data."""
    with engine.connect() as db:
        now = db.execute(select(func.now())).scalar_one()
        span = dt.timedelta(seconds=QuotaPolicy.of(settings).span_s)
        batches = db.execute(
            select(
                TrackingBatch.batch_uuid,
                TrackingBatch.status,
                TrackingBatch.total_jobs,
                TrackingBatch.completed_jobs,
                TrackingBatch.failed_jobs,
                TrackingBatch.created_at,
            )
            .order_by(TrackingBatch.id.desc())
            .limit(10)
        ).all()
        in_flight = db.execute(
            select(TrackingJob.status, func.count(), func.min(TrackingJob.created_at))
            .where(TrackingJob.status.in_(IN_FLIGHT))
            .group_by(TrackingJob.status)
        ).all()
        calls = db.execute(
            select(ApiCall.kind, func.count())
            .where(in_window(ApiCall.at, now, span))
            .group_by(ApiCall.kind)
        ).all()
        blocked = db.execute(select(QuotaState.blocked_until)).scalar_one_or_none()
        expired = count_expired(db, settings.recheck_expire_s)
        logs = db.execute(
            select(SyncLog.timestamp, SyncLog.operation_type, SyncLog.success, SyncLog.message)
            .order_by(SyncLog.id.desc())
            .limit(5)
        ).all()
    used = sum(n for _, n in calls)
    return {
        "at": now.isoformat(),
        "batches": [
            {
                "batch_uuid": str(u),
                "status": status,
                "total_jobs": total,
                "completed_jobs": completed,
                "failed_jobs": failed,
                "created_at": created.isoformat(),
            }
            for u, status, total, completed, failed, created in batches
        ],
        "jobs_in_flight": {
            status: {"count": n, "oldest_age_s": round((now - oldest).total_seconds(), 1)}
            for status, n, oldest in in_flight
        },
        #: purchases given up, still without a tracking number (CONTRACT.md, Giving up)
        "expired": expired,
        "quota": {
            "window_s": settings.api_quota_window_s,
            "calls": settings.api_quota_calls,
            "used": used,
            "left": max(0, settings.api_quota_calls - used),
            "by_kind": dict(calls),
            "blocked_until": blocked.isoformat() if blocked and blocked > now else None,
        },
        "queues": queue_depths(connection) if connection is not None else None,
        "sync_log": [
            {"timestamp": t.isoformat(), "operation_type": o, "success": s, "message": m}
            for t, o, s, m in logs
        ],
    }


def queue_depths(connection: Connection) -> dict[str, dict[str, int]]:
    """Ready messages and consumers of every queue (passive declares: nothing changes)."""
    depths = {}
    for queue in all_queues():
        with connection.channel() as channel:
            try:
                _, messages, consumers = channel.queue_declare(queue.name, passive=True)
            except Exception:  # not declared yet: no service has started
                messages, consumers = 0, 0
            depths[queue.name] = {"messages": messages, "consumers": consumers}
    return depths


def batch_jobs(engine: Engine, batch_uuid: str) -> list[dict[str, Any]]:
    """One batch's jobs, with their status and reasons."""
    with engine.connect() as db:
        rows = db.execute(
            select(
                TrackingJob.custom_id,
                TrackingJob.purchasing_id,
                TrackingJob.job_id,
                TrackingJob.status,
                TrackingJob.error,
                TrackingJob.rejected,
            )
            .join(TrackingBatch, TrackingBatch.id == TrackingJob.batch_id)
            .where(TrackingBatch.batch_uuid == uuid.UUID(batch_uuid))
            .order_by(TrackingJob.index)
        ).all()
    return [dict(row._mapping) for row in rows]
