"""What the demo shows: live progress per batch and the quota in use, then a summary
read from the database (the same rows an operator would query)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine, func, select

from demo.data import DemoRow
from ops.watch import line
from shared.contracts import TrackingUpdated
from shared.db import sync_log
from shared.db.models import (
    ApiCall,
    PurchaseCheck,
    Purchasing,
    SyncLog,
    TrackingBatch,
    TrackingJob,
    TrackingUpdateOutbox,
)
from shared.db.statuses import FINAL_BATCH_STATUSES, JobStatus
from shared.messaging.envelope import decode
from shared.messaging.topology import TRACKING_UPDATED
from shared.quota import QuotaPolicy, in_window
from shared.tasks import TRACKING_TASK_CONFIGS


def quota_in_window(policy: QuotaPolicy):
    """(creations, calls) in the ledger's window that ends now."""
    return select(func.count().filter(ApiCall.kind == "create"), func.count()).where(
        in_window(ApiCall.at, func.clock_timestamp(), policy.span)
    )


def progress(engine: Engine, policy: QuotaPolicy) -> Group:
    """A bar per batch (ended jobs of all) and one for the quota used in the ledger's
    window (the API's and its margin)."""
    grid = Table.grid(padding=(0, 1))
    with engine.connect() as connection:
        batches = connection.execute(
            select(
                TrackingBatch.batch_uuid,
                TrackingBatch.total_jobs,
                TrackingBatch.status,
                func.count(TrackingJob.id).filter(TrackingJob.status == JobStatus.COMPLETED),
                func.count(TrackingJob.id).filter(TrackingJob.status == JobStatus.FAILED),
                func.count(TrackingJob.id).filter(TrackingJob.scraping_job_id.is_not(None)),
            )
            .join(TrackingJob, TrackingJob.batch_id == TrackingBatch.id)
            .group_by(TrackingBatch.id)
            .order_by(TrackingBatch.id)
        ).all()
        creates, used = connection.execute(quota_in_window(policy)).one()
    for uuid, total, status, completed, failed, published in batches:
        grid.add_row(
            f"batch {uuid.hex[:8]}",
            ProgressBar(total=total, completed=completed + failed, width=40),
            f"{completed + failed}/{total} ended ({completed} completed, {failed} failed), "
            f"{published} scraping jobs created, {status}",
        )
    grid.add_row(
        "API quota",
        ProgressBar(total=policy.calls, completed=used, width=40),
        f"{used}/{policy.calls} calls in the last {policy.span_s:g} s ({creates} creates)",
    )
    return Group(grid)


def finished(engine: Engine) -> bool:
    """Every batch has ended (and there is at least one), and every event it told has
    been relayed."""
    with engine.connect() as connection:
        statuses = connection.execute(select(TrackingBatch.status)).scalars().all()
        waiting = connection.execute(
            select(func.count()).where(TrackingUpdateOutbox.relayed_at.is_(None))
        ).scalar_one()
    return bool(statuses) and all(s in FINAL_BATCH_STATUSES for s in statuses) and not waiting


def outcomes(engine: Engine) -> dict[int, tuple[str, str]]:
    """purchasing id → (outcome, detail) after the run: filled, refreshed (the status
    task), pending (re-check scheduled), failed, skipped (by the selector, with its
    reason), untouched, in flight."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Purchasing.id,
                Purchasing.tracking_number,
                Purchasing.latest_delivery_status,
                TrackingJob.status,
                TrackingJob.error,
                PurchaseCheck.last_reason,
                TrackingBatch.task_name,
                TrackingJob.rejected,
            )
            .outerjoin(TrackingJob, TrackingJob.purchasing_id == Purchasing.id)
            .outerjoin(TrackingBatch, TrackingBatch.id == TrackingJob.batch_id)
            .outerjoin(PurchaseCheck, PurchaseCheck.purchasing_id == Purchasing.id)
        ).all()
        logs = connection.execute(
            select(SyncLog.details).where(SyncLog.operation_type == sync_log.TRIGGERED)
        ).scalars()
        skipped = {s["purchasing_id"]: s["reason"] for d in logs for s in d.get("skipped", [])}
    found: dict[int, tuple[str, str]] = {}
    for pid, number, status, job_status, error, reason, task, rejected in rows:
        if job_status is None:
            found[pid] = ("skipped", skipped[pid]) if pid in skipped else ("untouched", "")
        elif job_status == JobStatus.FAILED:
            found[pid] = ("failed", error or "")
        elif job_status != JobStatus.COMPLETED:
            found[pid] = ("in flight", job_status)
        elif not TRACKING_TASK_CONFIGS[task].seeks_number:
            kept = ", ".join(sorted(rejected or {}))
            found[pid] = ("refreshed", f"{status} (not written: {kept})" if kept else status or "")
        elif number:
            found[pid] = ("filled", f"{number} {status or ''}".strip())
        else:
            found[pid] = ("pending", reason or status or "")
    return found


def summary(engine: Engine, rows: list[DemoRow]) -> Table:
    """One line per outcome: how many, how many were expected, the reasons."""
    found = outcomes(engine)
    expected = Counter(row.expected for row in rows)
    details: dict[str, Counter] = defaultdict(Counter)
    for outcome, detail in found.values():
        details[outcome][_reason(outcome, detail)] += 1
    table = Table(title="trackfill demo: what happened to each purchase")
    table.add_column("outcome")
    table.add_column("purchases", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("reasons (count)")
    outcomes_shown = ("filled", "refreshed", "pending", "failed", "skipped", "untouched")
    for outcome in (*outcomes_shown, "in flight"):
        reasons = details.get(outcome, Counter())
        count = sum(reasons.values())
        if not count and not expected.get(outcome):
            continue
        table.add_row(
            _label(outcome),
            str(count),
            str(expected.get(outcome, 0)),
            "\n".join(f"{reason} ({n})" for reason, n in reasons.most_common(6)),
        )
    return table


def _reason(outcome: str, detail: str) -> str:
    if outcome == "filled":
        return "tracking number written"
    return detail or "-"


def _label(outcome: str) -> str:
    return {
        "pending": "still pending (re-check scheduled)",
        "refreshed": "status refreshed (Japan Post, Yamato)",
        "failed": "failed",
        "skipped": "skipped by the selector",
        "untouched": "not selected (filter)",
    }.get(outcome, outcome)


def as_dict(engine: Engine) -> dict[str, Any]:
    """The outcomes counted, for tests and scripts."""
    return dict(Counter(outcome for outcome, _ in outcomes(engine).values()))


def events(engine: Engine, samples: int = 3) -> Group:
    """The tracking.updated events the run produced (from the outbox): how many, how
    many were relayed, a count per new status code, and a few sample lines."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(TrackingUpdateOutbox.body, TrackingUpdateOutbox.relayed_at).order_by(
                TrackingUpdateOutbox.id
            )
        ).all()
    told = [decode(body, TRACKING_UPDATED) for body, _ in rows]
    codes = Counter(
        (e.payload["changes"].get("delivery_status_code") or {}).get("new") or "(no code change)"
        for e in told
    )
    relayed = sum(at is not None for _, at in rows)
    by_code = ", ".join(f"{code} {n}" for code, n in codes.most_common())
    lines = [f"tracking.updated: {len(told)} events, {relayed} relayed; by new status: {by_code}"]
    # the samples: the latest events, the refreshes' last (a parcel reaching delivered)
    for envelope in told[-samples:]:
        lines.append("  " + line(envelope, TrackingUpdated.parse(envelope.payload)))
    return Group(*(Text(text) for text in lines))
