"""End to end: the simulator and the four services as separate processes, started by the
same module as ``./run demo`` (demo.stack), on the test database and a fresh vhost, with
time compressed 100x. Only Web Scraper Cloud is simulated."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from demo import report
from demo.data import insert_demo_rows
from demo.stack import Timings, select_candidates, start_stack
from shared.db.models import Purchasing, SyncLog, TrackingBatch, TrackingJob
from shared.db.session import make_session_factory
from shared.domain.tracking_numbers import validate
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK
from tests.support import rows
from tests.support.rabbit import queue_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
FAST = Timings(factor=100, sim_run_s=0.4, ingest_retry_s=0.3)
DEAD_LETTER_QUEUES = ("publisher.candidates.dead-letter", "ingestor.completions.dead-letter")


@pytest.fixture
def stack(database_url, vhost, db, tmp_path: Path):
    running = start_stack(
        database_url, vhost.amqp_url, tmp_path / "logs", FAST, extra_env={"LOG_FORMAT": "json"}
    )
    yield running
    codes = running.stop()
    assert set(codes.values()) == {0}, codes  # every service exits 0 on SIGTERM


def dead_letters(vhost) -> dict[str, list[str]]:
    return {
        queue: [m["properties"]["headers"]["x-trackfill-reason"] for m in vhost.messages(queue)]
        for queue in DEAD_LETTER_QUEUES
    }


def downloads_owed(state: dict) -> int:
    """Scraping jobs worth a download: those holding records, and finished ones whose
    problem pages do not explain every URL (the ingestor skips the rest)."""
    return sum(
        1
        for job in state["jobs"]
        if job["stored_record_count"] > 0
        or (
            job["status"] == "finished"
            and job["jobs_empty"] + job["jobs_failed"] < len(set(job["start_urls"]))
        )
    )


def test_a_demo_batch_runs_end_to_end_with_every_outcome(stack, db, vhost):
    demo_rows = insert_demo_rows(db)
    # planted bad inputs, one per exchange a service consumes
    vhost.management.publish(vhost.name, "candidate.found", TASK.name, '{"purchasing_id": "x"}')
    vhost.management.publish(vhost.name, "job.completed", TASK.name, "not json at all")
    oversized = json.dumps({"purchasing_id": 1, "padding": "x" * 70_000})
    for exchange in ("candidate.found", "job.completed"):
        vhost.management.publish(vhost.name, exchange, TASK.name, oversized)
    # typed by hand with the edge's field rules broken (issue 18)
    forged = "owryt-ab\n2026-12-02 09:00:00,000 INFO trackfill.ingestor FORGED LINE"
    vhost.management.publish(
        vhost.name, "candidate.found", TASK.name,
        json.dumps({"order_number": "W1\n23", "email": "u@example.com"}),
    )  # fmt: skip
    vhost.management.publish(
        vhost.name, "job.completed", TASK.name,
        json.dumps({"scrapingjob_id": 5, "status": "finished", "custom_id": forged}),
    )  # fmt: skip
    selection = select_candidates(stack)
    assert selection.returncode == 0, selection.stderr
    assert "51 dispatched, 2 skipped" in selection.stdout
    assert wait_until(lambda: report.finished(db), timeout=90), report.as_dict(db)

    outcomes = report.outcomes(db)
    # the refresh task is off in this stack: its parcels are left as they were
    expected = {
        r.purchasing_id: "untouched" if r.expected == "refreshed" else r.expected for r in demo_rows
    }
    wrong = {
        r.order_number: outcomes[r.purchasing_id]
        for r in demo_rows
        if outcomes[r.purchasing_id][0] != expected[r.purchasing_id]
    }
    assert wrong == {}
    sessions = make_session_factory(db)
    with sessions() as session:
        purchases = {p.id: p for p in session.execute(select(Purchasing)).scalars()}
        jobs = session.execute(select(TrackingJob)).scalars().all()
        (batch,) = session.execute(select(TrackingBatch)).scalars()
        logs = session.execute(select(SyncLog).order_by(SyncLog.id)).scalars().all()
    for row in demo_rows:
        purchase = purchases[row.purchasing_id]
        if row.expected == "filled":
            assert validate(purchase.tracking_number, purchase.shipping_method)
            assert purchase.latest_delivery_status
    assert purchases[demo_rows[-8].purchasing_id].tracking_number == "444413758703"  # kept
    assert Counter(j.status for j in jobs) == {"completed": 41, "failed": 10}
    assert (batch.status, batch.total_jobs, batch.completed_jobs, batch.failed_jobs) == (
        "partial",
        51,
        41,
        10,
    )
    assert [(log.operation_type, log.success) for log in logs] == [
        ("tracking_number_empty_triggered", True),
        ("tracking_number_empty_completed", False),
    ]
    assert logs[1].details["failed_jobs"] == 10

    state = stack.sim_state()
    # packed (PUBLISH_MAX_URLS_PER_JOB 20): the pass's 51 in a few jobs, each URL in one
    urls = Counter(url for job in state["jobs"] for url in job["start_urls"])
    assert set(urls.values()) == {1} and set(urls) == {j.target_url for j in jobs}
    assert 3 <= len(state["jobs"]) <= 6
    assert {j.scraping_job_id for j in jobs} == {job["id"] for job in state["jobs"]}
    assert [c for c in state["calls"] if c["status"] == 429] == []
    # the follow-ups: a status check, a download and a look at the problem pages per job
    kinds = Counter(c["kind"] for c in state["calls"])
    assert kinds["create"] == kinds["get"] == len(state["jobs"])
    assert kinds["json"] == downloads_owed(state)
    assert kinds["problematic"] <= len(state["jobs"])

    assert wait_until(lambda: all(len(v) == 3 for v in dead_letters(vhost).values()), timeout=10)
    reasons = dead_letters(vhost)
    assert any(
        "purchasing_id must be a positive integer" in r for r in reasons[DEAD_LETTER_QUEUES[0]]
    )
    assert any("body is not JSON" in r for r in reasons[DEAD_LETTER_QUEUES[1]])
    assert any("order_number contains a control" in r for r in reasons[DEAD_LETTER_QUEUES[0]])
    assert any("custom_id contains a control" in r for r in reasons[DEAD_LETTER_QUEUES[1]])
    for queue in DEAD_LETTER_QUEUES:  # the oversized ones, on both exchanges
        assert any("more than 65536" in r for r in reasons[queue]), reasons[queue]
    assert queue_counts(vhost.amqp_url, "publisher.candidates")[0] == 0
    logged = "".join(p.read_text() for p in stack.logs.glob("*.log"))
    assert "\nFORGED" not in logged and "\n2026-12-02 09:00:00,000 INFO" not in logged
    for name in ("selector", "publisher", "webhook_gateway", "ingestor"):
        text = (stack.logs / f"{name}.log").read_text().splitlines()
        # every log line is JSON (the selector's file also holds its command's report)
        lines = [json.loads(x) for x in text if not x.startswith("pass 1/1:")]
        about_jobs = [x for x in lines if "owryt-" in x["message"]]
        assert about_jobs and all(x["custom_id"] in x["message"] for x in about_jobs), name
    assert "buyer1@example.com" not in logged and "b***@example.com" in logged
    assert stack.env["WEBSCRAPER_API_TOKEN"] not in logged
    assert stack.env["WEBHOOK_TOKEN"] not in logged


def test_a_candidate_typed_into_the_management_ui_is_processed(stack, db, vhost):
    account = rows.account(db, "manual@example.com")
    by_id = rows.purchase(db, account, rows.order_number(0))
    by_order = rows.purchase(db, account, rows.order_number(3))
    order = rows.column_of(db, Purchasing.order_number, by_order)
    # what the UI's "Publish message" form sends: a string payload, no content type
    vhost.management.publish(
        vhost.name, "candidate.found", TASK.name, json.dumps({"purchasing_id": by_id})
    )
    vhost.management.publish(
        vhost.name,
        "candidate.found",
        TASK.name,
        json.dumps({"order_number": order.lower(), "email": "manual@example.com"}),
    )
    filled = lambda pid: rows.column_of(db, Purchasing.tracking_number, pid)  # noqa: E731
    assert wait_until(lambda: filled(by_id) and filled(by_order), timeout=30)
    assert rows.column_of(db, Purchasing.shipping_method, by_order).startswith("JP LOGISTICS")
    assert dead_letters(vhost) == {queue: [] for queue in DEAD_LETTER_QUEUES}


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """A /metrics page as {(name, sorted labels): value}."""
    text = requests.get(url, timeout=5).text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def with_numbers(db) -> int:
    with db.connect() as connection:
        return connection.execute(
            select(func.count()).where(Purchasing.tracking_number.is_not(None))
        ).scalar_one()


def test_metrics_after_a_run_agree_with_the_rows(stack, db, vhost):
    demo_rows = insert_demo_rows(db)
    had_numbers = with_numbers(db)  # one row, and the Japan Post parcels (refresh off here)
    assert select_candidates(stack).returncode == 0
    assert wait_until(lambda: report.finished(db), timeout=90)
    sessions = make_session_factory(db)
    with sessions() as session:
        jobs = session.execute(select(TrackingJob)).scalars().all()
    publisher = scrape(stack.metrics_urls["publisher"])
    ingestor = scrape(stack.metrics_urls["ingestor"])
    gateway = scrape(stack.metrics_urls["webhook_gateway"])
    made = len(stack.sim_state()["jobs"])  # packed: a few scraping jobs for the 51
    assert (
        publisher[("trackfill_api_calls_total", (("kind", "create"), ("outcome", "200")))] == made
    )
    assert ingestor[("trackfill_api_calls_total", (("kind", "get"), ("outcome", "200")))] == made
    owed = downloads_owed(stack.sim_state())
    assert ingestor[("trackfill_api_calls_total", (("kind", "json"), ("outcome", "200")))] == owed
    statuses = Counter(j.status for j in jobs)
    for scraped in (publisher, ingestor):  # read from the database by every process
        for status in ("completed", "failed", "pending"):
            assert scraped[("trackfill_jobs", (("status", status),))] == statuses.get(status, 0)
        assert (
            scraped[("trackfill_quota_used_calls", ())]
            + scraped[("trackfill_quota_left_calls", ())]
            == 200
        )
        assert scraped[("trackfill_oldest_in_flight_job_age_seconds", ())] == 0  # all ended
    ended = {s: ingestor[("trackfill_jobs_ended_total", (("status", s),))] for s in statuses}
    assert ended == {"completed": 41, "failed": 10}
    rejected = Counter(rule for j in jobs for rule in (j.rejected or {}))
    for rule, count in rejected.items():
        assert ingestor[("trackfill_validation_failures_total", (("rule", rule),))] == count
    # one observation per purchase trackfill filled (some demo rows had their number before)
    expected_filled = sum(1 for r in demo_rows if r.expected == "filled")
    assert ingestor[("trackfill_fill_latency_seconds_count", ())] == expected_filled
    assert with_numbers(db) == expected_filled + had_numbers
    assert gateway[("trackfill_webhooks_total", (("outcome", "queued"),))] == made  # one a job
    # the public webhook port serves the webhook and /healthz, not the metrics
    public = f"http://{stack.env['GATEWAY_BIND']}"
    assert requests.get(f"{public}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{public}/metrics", timeout=5).status_code == 404
