"""``./run demo`` as a newcomer runs it (``python -m demo``), on a database and vhost of
its own: it finishes with the expected summary, and Ctrl-C stops every process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text

from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
SERVICES = ("webscraper_sim", "webhook_gateway", "publisher", "ingestor")


@pytest.fixture
def demo(postgres_admin_url, rabbitmq, tmp_path):
    amqp_url, management = rabbitmq
    parts = urlsplit(amqp_url)
    name = f"trackfill_demo_test_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DEMO_ADMIN_DATABASE_URL": postgres_admin_url,
        "DEMO_AMQP_URL": f"{parts.scheme}://{parts.netloc}/",
        "DEMO_MANAGEMENT_URL": management.base.removesuffix("/api/"),
    }
    command = [sys.executable, "-m", "demo", "--database", name, "--vhost", name]
    command += ["--logs", str(tmp_path / "logs")]
    yield command, env, tmp_path / "logs"
    management.delete_vhost(name)
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def children_of(pid: int) -> list[str]:
    found = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True)
    return [
        line
        for line in found.stdout.splitlines()[1:]
        if line.split()[1] == str(pid) and any(f"-m {s}" in line for s in SERVICES)
    ]


def test_the_demo_runs_to_its_summary(demo):
    command, env, logs = demo
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "51 dispatched, 2 skipped" in out, out
    assert "10 dispatched, 0 skipped" in out, out  # the Japan Post refresh's pass
    assert "6 dispatched, 0 skipped" in out, out  # the Yamato refresh's pass
    assert "51/51 ended (41 completed, 10" in out, out  # the line wraps at 80 columns
    assert "10/10 ended (10 completed, 0" in out, out
    assert "6/6 ended (6 completed, 0" in out, out
    assert "stopped: webscraper-sim (0), webhook_gateway (0), publisher (0), ingestor (0)" in out
    counts = [("filled", 28), ("status refreshed", 16), ("still pending", 13), ("failed", 10)]
    for outcome, count in counts:
        line = next(x for x in out.splitlines() if x.startswith(f"│ {outcome}"))
        assert f"│ {count:>9} │ {count:>8} │" in line, line
    # every change told, all relayed: 28 fills, 9 statuses of purchases still pending
    # (the 4 garbage pages have no valid told value), the 10 Japan Post refreshes (each
    # status gets its code) and 5 Yamato ones (the page showing another number writes
    # nothing)
    assert "tracking.updated: 52 events, 52 relayed" in out, out
    assert "official_website_yamato_status_refresh purchase" in out
    assert "in_transit -> delivered" in " ".join(out.split()), out
    assert {p.name for p in logs.glob("*.log")} >= {f"{s}.log" for s in ("publisher", "ingestor")}


def test_ctrl_c_stops_every_process_it_started(demo):
    command, env, logs = demo
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("started:"):
                break
        assert len(children_of(process.pid)) == 4
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 130
        assert "interrupted: stopping everything" in process.stdout.read()
        assert wait_until(lambda: children_of(process.pid) == [], timeout=5)
    finally:
        process.kill()
