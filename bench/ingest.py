"""Ingestion throughput: N job.completed messages whose scraping jobs exist in the simulator.

Set-up: a scratch database and vhost, the simulator as its own process (quota raised out
of the way: this measures the ingestor, not the quota), N purchases with one finished
scraping job each (order numbers ending in 0: a valid Yamato page), their tracking_jobs
``pending``. Then ``--replicas`` ``python -m ingestor`` processes are started, and the N
messages are published at once. Printed: jobs/s (first publish to last committed row), p50
and p95 latency from publish to the committed row, and the same for a baseline run of the
consumer loop with a handler that does nothing (what RabbitMQ and the loop cost alone).
Goal (issue 5): >= 200 jobs/s.

    .venv/bin/python bench/ingest.py [--jobs 400] [--replicas 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, update  # noqa: E402

from bench.gateway import broker_pid, cpu_s, stop, wait_listening  # noqa: E402
from bench.scratch import scratch_services  # noqa: E402
from demo.stack import free_port  # noqa: E402
from shared.contracts import JobCompleted  # noqa: E402
from shared.db.batches import NewJob, create_batch  # noqa: E402
from shared.db.models import OfficialAccount, Purchasing, TrackingJob  # noqa: E402
from shared.db.session import make_engine, make_session_factory  # noqa: E402
from shared.domain.urls import order_status_url  # noqa: E402
from shared.messaging.consuming import ConsumerLoop  # noqa: E402
from shared.messaging.envelope import new_envelope  # noqa: E402
from shared.messaging.publishing import MessagePublisher, Outgoing, connect  # noqa: E402
from shared.messaging.topology import INGESTOR_COMPLETIONS, JOB_COMPLETED, ROUTES  # noqa: E402
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK  # noqa: E402

TOKEN = "bench-ingest-api-token"
EMAIL = "bench@example.com"


def prepare(sessions, api_url: str, n: int) -> list[tuple[str, int]]:
    """N purchases, one batch, one finished scraping job each: (custom_id, job id)."""
    with sessions() as session, session.begin():
        account = session.execute(
            OfficialAccount.__table__.insert().values(email=EMAIL).returning(OfficialAccount.id)
        ).scalar_one()
        orders = [f"W{9_000_000_000 + i * 10:010d}" for i in range(n)]
        ids = (
            session.execute(
                Purchasing.__table__.insert().returning(
                    Purchasing.id, sort_by_parameter_order=True
                ),
                [{"order_number": o, "official_account_id": account} for o in orders],
            )
            .scalars()
            .all()
        )
        new = [
            NewJob(pid, o, order_status_url(o, EMAIL)) for pid, o in zip(ids, orders, strict=True)
        ]
        refs = create_batch(session, TASK, new)
    http = requests.Session()
    jobs = []
    for ref, job in zip(refs, new, strict=True):
        body = {
            "sitemap_id": TASK.sitemap_id,
            "driver": "fulljs",
            "start_urls": [job.url],
            "custom_id": ref.custom_id,
        }
        created = http.post(f"{api_url}scraping-job", params={"api_token": TOKEN}, json=body)
        jobs.append((ref.custom_id, created.json()["data"]["id"]))
    with sessions() as session, session.begin():
        for custom_id, scraping_job_id in jobs:
            session.execute(
                update(TrackingJob)
                .where(TrackingJob.custom_id == custom_id)
                .values(scraping_job_id=scraping_job_id, status="pending")
            )
    return jobs


def publish(amqp_url: str, jobs: list[tuple[str, int]]) -> dt.datetime:
    messages = [
        Outgoing.of(
            JOB_COMPLETED,
            TASK.name,
            new_envelope(
                JOB_COMPLETED,
                JobCompleted(TASK.name, scraping_job_id, "finished", custom_id).to_payload(),
            ),
        )
        for custom_id, scraping_job_id in jobs
    ]
    with connect(amqp_url) as connection:
        publisher = MessagePublisher(connection)
        publisher.ensure_ready()
        started = dt.datetime.now(dt.UTC)
        publisher.publish_many(messages)
    return started


def wait_consumers(amqp_url: str, n: int, timeout: float = 60) -> None:
    """Until ``n`` consumers are attached to the ingestor's queue (started and imported:
    the measurement starts with every process ready)."""
    deadline = time.monotonic() + timeout
    with connect(amqp_url) as connection, connection.channel() as channel:
        while time.monotonic() < deadline:
            declared = channel.queue_declare(INGESTOR_COMPLETIONS, passive=True)
            if declared.consumer_count >= n:
                return
            time.sleep(0.1)
    raise RuntimeError(f"fewer than {n} consumers on {INGESTOR_COMPLETIONS} after {timeout}s")


def wait_ended(sessions, n: int, timeout: float) -> list[dt.datetime]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            done = session.execute(
                select(func.count()).where(TrackingJob.completed_at.is_not(None))
            ).scalar_one()
        if done >= n:
            break
        time.sleep(0.1)
    with sessions() as session:
        return list(
            session.execute(
                select(TrackingJob.completed_at).where(TrackingJob.completed_at.is_not(None))
            ).scalars()
        )


def figures(started: dt.datetime, ended: list[dt.datetime], n: int) -> dict[str, float]:
    latencies = sorted((t - started).total_seconds() * 1000 for t in ended)
    span = max(latencies) / 1000 if latencies else float("inf")
    return {
        "done": len(latencies),
        "rate": len(latencies) / span,
        "p50": statistics.median(latencies),
        "p95": latencies[int(len(latencies) * 0.95) - 1],
    }


def baseline(amqp_url: str, n: int) -> dict[str, float]:
    """The consumer loop with a handler that only notes the time: the floor."""
    times: list[float] = []
    stop_event = threading.Event()
    loop = ConsumerLoop(
        lambda: connect(amqp_url),
        ROUTES[INGESTOR_COMPLETIONS],
        lambda d: times.append(time.time()),
        stop_event,
        schema=JobCompleted.parse,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    loop.ready.wait(15)
    jobs = [(TASK.custom_id("ba5e0000", i), 1 + i) for i in range(n)]
    started = publish(amqp_url, jobs)
    deadline = time.monotonic() + 120
    while len(times) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    stop_event.set()
    thread.join(15)
    ended = [dt.datetime.fromtimestamp(t, dt.UTC) for t in times]
    return figures(started, ended, n)


def cpu_by_part(parts: dict[str, list[int | None]]) -> dict[str, float]:
    """CPU seconds used so far by each part, and by PostgreSQL's processes (its
    server and every backend, whoever's connection it serves)."""
    used = {name: sum(cpu_s(pid) for pid in pids) for name, pids in parts.items()}
    found = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True)
    used["PostgreSQL"] = sum(cpu_s(int(pid)) for pid in found.stdout.split())
    return used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--logs", default="/tmp/trackfill-bench-ingest.log")
    options = parser.parse_args()
    n = options.jobs
    logs = Path(options.logs)
    logs.write_text("")
    with scratch_services() as (database_url, amqp_url):
        floor = baseline(amqp_url, n)
        port = free_port()
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webscraper_sim",
                "--port",
                str(port),
                "--token",
                TOKEN,
                "--quota-calls",
                "1000000",
                "--schedule-delay-s",
                "0",
                "--start-delay-s",
                "0",
                "--run-s",
                "0.05",
            ],
            stdout=subprocess.DEVNULL,
        )
        workers: list[subprocess.Popen] = []
        try:
            wait_listening(port)
            api_url = f"http://127.0.0.1:{port}/api/v1/"
            engine = make_engine(database_url)
            sessions = make_session_factory(engine)
            jobs = prepare(sessions, api_url, n)
            time.sleep(0.5)  # every scraping job has ended
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "AMQP_URL": amqp_url,
                "WEBSCRAPER_API_URL": api_url,
                "WEBSCRAPER_API_TOKEN": TOKEN,
                "API_QUOTA_CALLS": "1000000",
                "INGEST_RETRY_S": "0.2",
            }
            workers = [
                subprocess.Popen([sys.executable, "-m", "ingestor"], env=env, stderr=logs.open("a"))
                for _ in range(options.replicas)
            ]
            wait_consumers(amqp_url, options.replicas)
            parts = {
                "ingestors": [w.pid for w in workers],
                "simulator": [sim.pid],
                "RabbitMQ": [broker_pid()],
            }
            before = cpu_by_part(parts)
            started = publish(amqp_url, jobs)
            result = figures(started, wait_ended(sessions, n, timeout=300), n)
            used = {k: v - before.get(k, 0.0) for k, v in cpu_by_part(parts).items()}
            with sessions() as session:
                filled = session.execute(
                    select(func.count()).where(Purchasing.tracking_number.is_not(None))
                ).scalar_one()
            engine.dispose()
        finally:
            for process in [*workers, sim]:
                stop(process)
    print(f"{n} job.completed messages, {options.replicas} ingestor processes")
    print(f"{'':24} {'jobs/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'done':>6}")
    for name, f in (("baseline (no-op handler)", floor), ("ingestor", result)):
        print(f"{name:24} {f['rate']:8.0f} {f['p50']:8.0f} {f['p95']:8.0f} {f['done']:6d}")
    print(f"purchases filled: {filled} of {n}; the ingestors' logs: {logs}")
    print(f"ingestor / baseline throughput: {result['rate'] / floor['rate']:.2f}")
    print(
        "CPU ms per job (the machine's cores are shared by all of these): "
        + ", ".join(f"{k} {v / n * 1000:.1f}" for k, v in used.items())
    )
    print(f"ingestor: {result['rate']:.0f} jobs/s (goal >= 200)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
