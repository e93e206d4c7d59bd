"""Retention on real PostgreSQL: what the rules still need is kept, the rest pruned."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, insert, select, update

from shared.db import retention
from shared.db.batches import NewJob, create_batch
from shared.db.models import (
    ApiCall,
    ProcessedNotification,
    SyncLog,
    TrackingJob,
    TrackingUpdateOutbox,
)
from shared.db.retention import Kept, prune
from shared.db.session import make_session_factory
from shared.db.statuses import JobStatus
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK

pytestmark = pytest.mark.integration
HOUR = 3600.0
KEPT = Kept(api_calls=2 * HOUR, processed=24 * HOUR, sync_logs=48 * HOUR, outbox=24 * HOUR)


@pytest.fixture
def sessions(db):
    return make_session_factory(db)


def ago(hours: float):
    return func.now() - dt.timedelta(hours=hours)


def jobs(sessions, *statuses: str) -> list[str]:
    """A job per status (queued jobs without a scraping job); their custom_ids."""
    new = [NewJob(None, f"W00{n}", f"https://example.com/{n}") for n in range(len(statuses))]
    with sessions() as session, session.begin():
        made = create_batch(session, TASK, new)
        for job, status in zip(made, statuses, strict=True):
            scraping_job_id = 1000 + job.id if status == JobStatus.PENDING else None
            session.execute(
                update(TrackingJob)
                .where(TrackingJob.id == job.id)
                .values(status=status, scraping_job_id=scraping_job_id)
            )
    return [job.custom_id for job in made]


def calls(sessions, *rows: tuple[str, str | None, float]) -> None:
    """(kind, custom_id, hours ago) per call, made."""
    with sessions() as session, session.begin():
        for kind, custom_id, hours in rows:
            at = ago(hours)
            session.execute(
                insert(ApiCall).values(kind=kind, custom_id=custom_id, at=at, used_at=at)
            )


def left(sessions, *columns) -> set:
    with sessions() as session:
        return {tuple(row) for row in session.execute(select(*columns))}


def test_pruning_removes_what_no_rule_needs_and_keeps_the_rest(sessions):
    settling, published = jobs(sessions, JobStatus.PUBLISHING, JobStatus.PENDING)
    calls(
        sessions,
        ("get", None, 3),  # older than two windows: gone
        ("create", published, 3),  # its job has its scraping job: gone
        ("create", settling, 30),  # a lost create still to be settled: kept, however old
        ("json", None, 1),  # inside the kept windows
    )
    with sessions() as session, session.begin():
        planned = ago(-0.5)  # a slot planned ahead
        session.execute(insert(ApiCall).values(kind="create", custom_id="owryt-x-0000", at=planned))
        for hours, n in ((25, 1), (23, 2)):
            session.execute(
                insert(ProcessedNotification).values(
                    scraping_job_id=n,
                    custom_id=f"owryt-p-{n:04d}",
                    status="finished",
                    processed_at=ago(hours),
                )
            )
        for n, relayed in enumerate((ago(25), ago(23), None)):  # None: not relayed yet
            session.execute(
                insert(TrackingUpdateOutbox).values(
                    event_id=f"e{n}",
                    routing_key=TASK.name,
                    body="{}",
                    created_at=ago(100),
                    relayed_at=relayed,
                )
            )
        for hours in (49, 47):
            session.execute(
                insert(SyncLog).values(
                    operation_type="tracking_number_empty_triggered",
                    success=True,
                    message=f"{hours} h ago",
                    timestamp=ago(hours),
                )
            )
    pruned = prune(sessions, KEPT)
    assert (pruned.api_calls, pruned.processed, pruned.sync_logs, pruned.outbox) == (2, 1, 1, 1)
    assert left(sessions, ApiCall.kind, ApiCall.custom_id) == {
        ("create", settling),
        ("json", None),
        ("create", "owryt-x-0000"),
    }
    assert left(sessions, ProcessedNotification.scraping_job_id) == {(2,)}
    assert left(sessions, SyncLog.message) == {("47 h ago",)}
    assert prune(sessions, KEPT) == retention.Pruned(0, 0, 0, 0)  # nothing more to do


def test_a_large_backlog_is_pruned_in_chunks_and_a_run_stays_bounded(sessions, monkeypatch):
    monkeypatch.setattr(retention, "CHUNK", 10)
    monkeypatch.setattr(retention, "MOST_CHUNKS", 3)
    calls(sessions, *[("get", None, 5)] * 45)
    assert prune(sessions, KEPT).api_calls == 30  # three chunks this run
    assert prune(sessions, KEPT).api_calls == 15  # the rest the next
    assert left(sessions, ApiCall.id) == set()
