"""The docs' code that can run, run: the pika block of "Publishing a candidate by hand"
(docs/operations.md) and the dry run of docs/selection.md, against the test services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.messaging.publishing import connect
from shared.messaging.topology import PUBLISHER_CANDIDATES, declare_topology
from tests.support import rows
from tests.support.rabbit import queue_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
#: the README and every page of docs/, as one text
README = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))])


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_the_readme_has_its_pika_block():
    assert any("basic_publish" in block for block in python_blocks())


@pytest.mark.parametrize("block", python_blocks())
def test_each_python_block_runs_and_publishes_what_it_says(block, vhost, monkeypatch):
    with connect(vhost.amqp_url) as connection:
        declare_topology(connection)
    monkeypatch.setenv("AMQP_URL", vhost.amqp_url)
    exec(compile(block, "docs", "exec"), {})
    # a single-active-consumer queue refuses "Get messages": count it instead
    assert wait_until(lambda: queue_counts(vhost.amqp_url, PUBLISHER_CANDIDATES)[0] == 1)


def test_the_dry_run_line_runs(database_url, db):
    line = next(
        x
        for x in README.splitlines()
        if x.startswith(".venv/bin/run_tracking_number_empty --dry-run")
    )
    command = line.split("#")[0].split()
    assert command[0] == ".venv/bin/run_tracking_number_empty"
    account = rows.account(db, "reader@example.com")
    rows.purchase(db, account, "W1234567890")
    script = Path(sys.executable).parent / "run_tracking_number_empty"
    done = subprocess.run(
        [str(script), *command[1:]],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "W1234567890" in done.stdout and "r***@example.com" in done.stdout
