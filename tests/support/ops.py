"""The operator's command as an operator runs it (a process, its settings in the
environment), and the services it talks about, run in threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from shared.contracts import JobCompleted
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import MessagePublisher, connect
from shared.messaging.topology import JOB_COMPLETED
from shared.settings import load_settings
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK
from tests.conftest import SIM_TOKEN

SCRIPT = str(Path(sys.executable).parent / "trackfill")


def ops_env(database_url: str, amqp_url: str, api_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "WEBSCRAPER_API_URL": api_url,
        "WEBSCRAPER_API_TOKEN": SIM_TOKEN,
        "INGEST_RETRY_S": "0.2",
        "HTTP_TIMEOUT_S": "2",
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``trackfill ARGS``, whatever its exit status."""
    return subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=60)


def trackfill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``trackfill ARGS``, which must succeed."""
    done = run(env, *args)
    assert done.returncode == 0, done.stderr
    return done


def notify(env: dict[str, str], custom_id: str, scraping_job_id: int) -> str:
    """The webhook's ``job.completed`` for a finished job, as the gateway publishes it;
    its message id."""
    payload = JobCompleted(TASK.name, scraping_job_id, "finished", custom_id).to_payload()
    envelope = new_envelope(JOB_COMPLETED, payload)
    with connect(env["AMQP_URL"]) as connection:
        MessagePublisher(connection).publish(JOB_COMPLETED, TASK.name, envelope)
    return envelope.id


class Service:
    """A service's consumer loop (``build(settings, stop)``) in a thread, until closed."""

    def __init__(self, build: Callable, env: dict[str, str]):
        self.stop = threading.Event()
        self.loop = build(load_settings(env), self.stop)
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()
        assert self.loop.ready.wait(15)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)
