# ruff: noqa: F811 - the fixtures imported from test_ingestor are used by name
"""AMQP_URL with several nodes (docs/scaling.md): a service given two URLs connects to
the first that answers, and after a connection loss to the next. One real RabbitMQ: the
"first node" is a dead port, or a forwarder to the broker that the test cuts."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.integration.test_ingestor import (  # noqa: F401
    env,
    notify,
    published,
    running_ingestor,
)
from tests.support.proxy import Forwarder
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def on_port(amqp_url: str, port: int) -> str:
    parts = urlsplit(amqp_url)
    return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}").geturl()


def test_a_service_given_a_dead_first_url_connects_to_the_second_and_works(env, published, sim):
    two = {**env, "AMQP_URL": f"{on_port(env['AMQP_URL'], 1)};{env['AMQP_URL']}"}
    (pid,) = published.make(0)
    assert wait_until(lambda: sim.state.snapshot()["jobs"][0]["status"] == "finished", 5)
    with running_ingestor(two):
        notify(two, published.job(pid))  # published through the same two URLs
        assert wait_until(lambda: published.ended(pid), timeout=15)
    assert published.purchase(pid).tracking_number is not None


def test_after_its_node_is_lost_a_service_fails_over_to_the_next_url(env, published, sim):
    first = Forwarder(urlsplit(env["AMQP_URL"]).port or 5672)
    two = {**env, "AMQP_URL": f"{on_port(env['AMQP_URL'], first.port)};{env['AMQP_URL']}"}
    before, after = published.make(0), published.make(2)
    assert wait_until(
        lambda: all(j["status"] == "finished" for j in sim.state.snapshot()["jobs"]), 5
    )
    with running_ingestor(two):
        notify(env, published.job(before[0]))
        assert wait_until(lambda: published.ended(before[0]), timeout=15)  # via the first
        assert first.accepted > 0  # it went through the first node
        first.cut()  # the node it is connected to dies
        notify(env, published.job(after[0]))
        assert wait_until(lambda: published.ended(after[0]), timeout=30)  # via the second
    assert published.purchase(after[0]).tracking_number is not None
