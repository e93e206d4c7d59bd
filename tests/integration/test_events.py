# ruff: noqa: F811 - the fixtures imported from test_ingestor are used by name
"""tracking.updated under faults (docs/events.md): the ingestor process killed (as
``kill -9``) at each step of a change and of its relay; every committed change is
published at least once with its one id, and nothing is published that was not
committed. Then ``trackfill watch``: its own queue, exit 0 on Ctrl-C, exit 2 without a
broker. Real PostgreSQL, RabbitMQ and the simulator, as in test_ingestor.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from shared.db.models import TrackingUpdateOutbox
from shared.messaging.topology import DOWNSTREAM_TRACKING_UPDATED
from tests.integration.test_ingestor import env, notify, published  # noqa: F401
from tests.support.ops import trackfill
from tests.support.rabbit import payload_json, queue_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def ingestor_process(env: dict[str, str], **more: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ingestor"],
        env={**os.environ, **env, **more},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def started(process: subprocess.Popen) -> subprocess.Popen:
    """``process`` once it consumes (its signal handlers are in place)."""
    for line in process.stderr:
        if "consuming ingestor.completions" in line:
            return process
    raise AssertionError(f"the ingestor ended before consuming: {process.wait()}")


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(15)
    finally:
        process.kill()


def outbox_rows(published) -> list[TrackingUpdateOutbox]:
    with published.sessions() as session:
        return list(session.execute(select(TrackingUpdateOutbox)).scalars())


def relayed_all(published) -> bool:
    rows = outbox_rows(published)
    return bool(rows) and all(row.relayed_at is not None for row in rows)


@pytest.mark.parametrize(
    "point",
    [
        "ingestor:before-commit",  # the changes and their events roll back together
        "ingestor:after-commit",  # committed, not yet relayed
        "relay:after-confirm",  # published, not marked relayed: published again
        "relay:after-commit",
    ],
)
def test_killed_at_any_step_every_committed_change_is_published_and_nothing_else(
    env, published, sim, vhost, point
):
    ids = published.make(0, 2, 6, packed=True)  # three fills: three changes
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", 5)
    notify(env, published.job(ids[0]))
    crashed = ingestor_process(env, TRACKFILL_CRASH_AT=point)
    assert crashed.wait(30) == 137, crashed.stderr.read()  # died at the crash point
    if point == "ingestor:before-commit":
        assert outbox_rows(published) == []  # rolled back: no event exists to publish
        assert not published.ended(*ids)
    if point == "ingestor:after-commit":  # written, never relayed: the operator sees it
        shown = trackfill({**os.environ, **env}, "status", "--json").stdout
        assert json.loads(shown)["events"]["waiting"] == 3
        assert "tracking.updated events: 3 waiting for the relay" in " ".join(
            trackfill({**os.environ, **env}, "status").stdout.split()
        )
    healthy = started(ingestor_process(env))
    try:
        assert wait_until(lambda: published.ended(*ids) and relayed_all(published), 30)
    finally:
        assert stop(healthy) == 0
    rows = outbox_rows(published)
    assert sorted(json.loads(row.body)["purchasing_id"] for row in rows) == sorted(ids)
    told = vhost.management.get_messages(vhost.name, DOWNSTREAM_TRACKING_UPDATED, 100)
    bodies = [payload_json(m) for m in told]
    assert {b["id"] for b in bodies} == {row.event_id for row in rows}  # each, none invented
    assert sorted({b["purchasing_id"] for b in bodies}) == sorted(ids)
    if point == "relay:after-confirm":
        assert len(bodies) == 2 * len(rows)  # at least once: the same ids twice
    else:
        assert len(bodies) == len(rows)
    for body in bodies:  # the same event whichever relay sent it
        assert body["changes"]["tracking_number"]["old"] is None


# -- trackfill watch


def watch_process(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "watch", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_follows_the_events_from_its_own_queue_and_exits_0_on_ctrl_c(
    env, published, sim, vhost
):
    watcher = watch_process(env)
    try:
        assert "watching tracking.updated" in watcher.stderr.readline()
        ids = published.make(0, 6, packed=True)
        assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", 5)
        notify(env, published.job(ids[0]))
        ingestor = started(ingestor_process(env))
        try:
            assert wait_until(lambda: relayed_all(published), 30)
        finally:
            stop(ingestor)
        lines = [watcher.stdout.readline() for _ in ids]
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(10) == 0
    finally:
        watcher.kill()
    assert all(" purchase " in line and "tracking_number (none) -> " in line for line in lines)
    assert {int(line.split(" purchase ")[1].split()[0]) for line in lines} == set(ids)
    assert "配達完了" in "".join(lines)
    # the watcher's queue took its own copies: the downstream queue still holds both
    time.sleep(0.5)
    assert queue_counts(env["AMQP_URL"], DOWNSTREAM_TRACKING_UPDATED)[0] == len(ids)


def test_watch_gives_one_line_and_exit_2_when_the_broker_is_down(env):
    down = {**env, "AMQP_URL": "amqp://guest:guest@127.0.0.1:1//"}
    watcher = watch_process(down, "--json")
    try:
        assert watcher.wait(30) == 2
    finally:
        watcher.kill()
    err = watcher.stderr.read().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("trackfill: cannot use RabbitMQ"), err
