"""run_tracking_number_empty and python -m selector as an operator runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from selector import cli
from shared.db.models import SyncLog, TrackingBatch, TrackingJob
from tests.support import rows
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
#: the console script pip installed beside this interpreter
SCRIPT = str(Path(sys.executable).parent / "run_tracking_number_empty")


@pytest.fixture
def env(database_url, vhost, monkeypatch) -> dict[str, str]:
    values = {
        "DATABASE_URL": database_url,
        "AMQP_URL": vhost.amqp_url,
        "SELECTOR_MAX_RECORDS": "20",
        "SELECTOR_INTERVAL_S": "0.5",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SCRIPT, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def counts(db) -> tuple[int, int, int]:
    with db.connect() as connection:
        return tuple(
            connection.execute(select(func.count()).select_from(m)).scalar_one()
            for m in (TrackingBatch, TrackingJob, SyncLog)
        )


def test_help_names_every_option():
    result = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for option in ("--count", "--sync", "--dry-run", "--timeout", "--task"):
        assert option in result.stdout


def test_dry_run_prints_the_records_masked_and_changes_nothing(db, env, capsys):
    account = rows.account(db, "someone@example.com")
    rows.purchase(db, account, "W1234567890")
    rows.purchase(db, rows.account(db, "bad address@example.com"), "W1234567891")
    assert cli.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "W1234567890" in out and "s***@example.com" in out
    assert "someone@" not in out
    assert "/vieworder/W1234567890/s***@example.com" in out
    assert "skipped: e-mail contains ' '" in out
    assert counts(db) == (0, 0, 0)


def test_the_refresh_task_by_hand_is_refused_while_off_and_lists_its_pages_when_on(
    db, env, monkeypatch, capsys
):
    task = ["--task", "japan_post_tracking_10_tracking_number"]
    assert cli.main([*task, "--dry-run"]) == 2
    assert "JAPAN_POST_SITEMAP_ID is not set" in capsys.readouterr().err
    monkeypatch.setenv("JAPAN_POST_SITEMAP_ID", "1424310")
    account = rows.account(db, "someone@example.com")
    rows.purchase(
        db,
        account,
        "W1234567892",
        tracking_number="5125-4751-4334",
        shipping_method="JP LOGISTICS GROUP CO., LTD.",
    )
    assert cli.main([*task, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "W1234567892" in out and "requestNo1=512547514334" in out
    assert counts(db) == (0, 0, 0)
    assert cli.main(task) == 0
    assert "1 found, 1 dispatched" in capsys.readouterr().out
    with db.connect() as connection:
        assert connection.execute(select(TrackingBatch.task_name)).scalar_one() == task[1]


def test_one_pass_by_default_and_exit_0_with_or_without_records(db, env, capsys):
    assert cli.main([]) == 0
    assert "0 found, 0 dispatched" in capsys.readouterr().out
    account = rows.account(db)
    for _ in range(3):
        rows.purchase(db, account)
    assert cli.main([]) == 0
    assert "3 found, 3 dispatched" in capsys.readouterr().out
    assert counts(db)[:2] == (1, 3)


def test_count_runs_n_passes(db, env, monkeypatch, capsys):
    monkeypatch.setenv("SELECTOR_MAX_RECORDS", "2")
    account = rows.account(db)
    for _ in range(5):
        rows.purchase(db, account)
    assert cli.main(["--count", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("pass ") == 3
    assert counts(db)[:2] == (3, 5)


def _finish_jobs_later(db, statuses: list[str], delay: float = 1.0) -> threading.Thread:
    """Play the ingestor: end the jobs after ``delay``."""

    def finish():
        time.sleep(delay)
        with db.begin() as connection:
            ids = connection.execute(select(TrackingJob.id).order_by(TrackingJob.id)).scalars()
            for tracking_job_id, status in zip(ids, statuses, strict=False):
                connection.execute(
                    update(TrackingJob)
                    .where(TrackingJob.id == tracking_job_id)
                    .values(status=status)
                )

    thread = threading.Thread(target=finish)
    thread.start()
    return thread


def test_sync_waits_for_the_batch_and_exits_0_when_every_job_completed(db, env, capsys):
    account = rows.account(db)
    rows.purchase(db, account)
    rows.purchase(db, account)
    finisher = _finish_jobs_later(db, ["completed", "completed"])
    assert cli.main(["--sync", "--poll", "0.1", "--timeout", "20"]) == 0
    finisher.join()
    assert "2 completed, 0 failed, 0 unfinished of 2" in capsys.readouterr().out


def test_sync_exits_1_when_a_job_failed(db, env, capsys):
    account = rows.account(db)
    rows.purchase(db, account)
    rows.purchase(db, account)
    finisher = _finish_jobs_later(db, ["completed", "failed"])
    assert cli.main(["--sync", "--poll", "0.1", "--timeout", "20"]) == 1
    finisher.join()
    assert "1 completed, 1 failed" in capsys.readouterr().out


def test_sync_exits_1_when_the_timeout_passes(db, env, capsys):
    rows.purchase(db, rows.account(db))
    assert cli.main(["--sync", "--poll", "0.1", "--timeout", "0.5"]) == 1
    assert "timed out after 0.5s" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SELECTOR_MAX_RECORDS", "lots", "SELECTOR_MAX_RECORDS must be a whole number"),
        ("DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/x", "cannot use the database"),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2F", "cannot use RabbitMQ"),
    ],
)
def test_bad_settings_or_unreachable_services_exit_2_with_one_line(env, variable, value, message):
    result = run_cli(env={**env, variable: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"run_tracking_number_empty: {message}")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_option_is_a_usage_error():
    result = subprocess.run([SCRIPT, "--count", "0"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "at least 1" in result.stderr


def start_daemon(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "selector"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_daemon_runs_passes_and_exits_0_on_sigterm(db, env):
    account = rows.account(db)
    rows.purchase(db, account)
    daemon = start_daemon(env)
    try:
        assert wait_until(lambda: counts(db)[1] == 1)
        rows.purchase(db, account)
        assert wait_until(lambda: counts(db)[1] == 2)  # a later pass took the new one
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        daemon.kill()
    assert "selector stopped" in daemon.stderr.read()


def test_the_daemon_survives_a_broker_outage(db, env):
    rows.purchase(db, rows.account(db))
    daemon = start_daemon({**env, "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F"})
    try:
        time.sleep(2.5)
        assert daemon.poll() is None  # still running, retrying
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        daemon.kill()
    assert "pass failed" in daemon.stderr.read()


def test_the_daemon_stops_at_start_on_a_bad_setting(env):
    daemon = start_daemon({**env, "SELECTOR_INTERVAL_S": "-1"})
    assert daemon.wait(20) == 2
    assert daemon.stderr.read().strip() == (
        "selector: SELECTOR_INTERVAL_S must be a number of seconds, more than 0, got '-1'"
    )


def test_under_a_backlog_the_daemon_keeps_the_publisher_fed_not_its_interval(db, env):
    """A full pass means more purchases wait: the next pass runs as soon as the
    publisher has taken the jobs in hand (here: they got scraping job ids), not after
    SELECTOR_INTERVAL_S; a pass that was not full waits the interval as before."""
    from sqlalchemy import update

    from shared.db.models import TrackingJob

    account = rows.account(db)
    for _ in range(12):
        rows.purchase(db, account)
    daemon = start_daemon(
        {
            **env,
            "SELECTOR_MAX_RECORDS": "5",
            "SELECTOR_INTERVAL_S": "60",
            "PUBLISH_MAX_URLS_PER_JOB": "1",
        }
    )

    def published_by_the_publisher() -> None:
        with db.begin() as connection:
            connection.execute(
                update(TrackingJob)
                .where(TrackingJob.status == "queued")
                .values(status="pending", scraping_job_id=TrackingJob.id + 1000)
            )

    try:
        assert wait_until(lambda: counts(db)[1] == 5, timeout=15)
        time.sleep(1.0)
        assert counts(db)[1] == 5  # five wait for the publisher: enough in hand
        published_by_the_publisher()
        assert wait_until(lambda: counts(db)[1] == 10, timeout=5)  # fed at once
        published_by_the_publisher()
        assert wait_until(lambda: counts(db)[1] == 12, timeout=5)  # the rest: 2 of 5
        published_by_the_publisher()
        rows.purchase(db, account)
        time.sleep(2.0)
        assert counts(db)[1] == 12  # no backlog any more: the interval (60 s) again
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
