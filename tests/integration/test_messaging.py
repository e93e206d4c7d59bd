"""Topology, confirmed publishing and the consumer loop, on a fresh vhost of the real broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pika
import pytest

from shared.contracts import CandidateFound
from shared.messaging.consuming import ConsumerLoop, Delivery, Reject, Transient
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import (
    REASON_HEADER,
    MessagePublisher,
    Outgoing,
    PublishError,
    connect,
)
from shared.messaging.topology import (
    DELIVERY_LIMIT,
    PUBLISHER_CANDIDATES,
    PUBLISHER_WAIT,
    ROUTES,
    declare_topology,
)
from tests.support.rabbit import queue_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
DLQ = f"{PUBLISHER_CANDIDATES}.dead-letter"


@pytest.fixture
def publisher(vhost) -> Iterator[MessagePublisher]:
    connection = connect(vhost.amqp_url)
    declare_topology(connection)
    yield MessagePublisher(connection)
    connection.release()


@pytest.fixture
def pika_channel(vhost):
    connection = pika.BlockingConnection(pika.URLParameters(vhost.amqp_url))
    yield connection.channel()
    connection.close()


@pytest.fixture
def ready_count(pika_channel):
    """Messages ready in a queue, now (the management API's counts lag by seconds)."""
    return lambda queue: pika_channel.queue_declare(queue, passive=True).method.message_count


@pytest.fixture
def run_loop(vhost):
    """Start a ConsumerLoop on publisher.candidates with a handler; stopped after the test."""
    started: list[tuple[ConsumerLoop, threading.Event, threading.Thread]] = []

    def start(handler, **options) -> tuple[ConsumerLoop, threading.Event, threading.Thread]:
        stop = threading.Event()
        loop = ConsumerLoop(
            lambda: connect(vhost.amqp_url, heartbeat_s=2),
            ROUTES[PUBLISHER_CANDIDATES],
            handler,
            stop,
            schema=CandidateFound.parse,
            poll_s=0.1,
            **options,
        )
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        assert loop.ready.wait(10), "the consumer never became ready"
        started.append((loop, stop, thread))
        return loop, stop, thread

    yield start
    for _, stop, thread in started:
        stop.set()
        thread.join(15)


def candidate(purchasing_id: int):
    return new_envelope("candidate.found", {"purchasing_id": purchasing_id})


def test_topology_can_be_declared_twice_with_the_contracts_names(vhost):
    with connect(vhost.amqp_url) as connection:
        declare_topology(connection)
        declare_topology(connection)
    exchanges = {e["name"]: e for e in vhost.management.exchanges(vhost.name)}
    for name in (
        "candidate.found",
        "job.published",
        "job.completed",
        "tracking.updated",
        "trackfill.dead-letter",
    ):
        assert exchanges[name]["type"] == "topic" and exchanges[name]["durable"]
    queues = {q["name"]: q for q in vhost.management.queues(vhost.name)}
    assert set(queues) == {
        "publisher.candidates",
        "publisher.due",
        "publisher.wait",
        "publisher.candidates.dead-letter",
        "ingestor.completions",
        "ingestor.wait",
        "ingestor.completions.dead-letter",
        "downstream.tracking-updated",
    }
    assert queues["downstream.tracking-updated"]["arguments"] == {"x-queue-type": "quorum"}
    candidates = queues["publisher.candidates"]["arguments"]
    assert candidates["x-single-active-consumer"] is True
    assert candidates["x-delivery-limit"] == DELIVERY_LIMIT
    assert candidates["x-dead-letter-exchange"] == "trackfill.dead-letter"
    wait = queues["publisher.wait"]["arguments"]
    assert wait["x-dead-letter-routing-key"] == "publisher.due"
    assert queues["publisher.due"]["arguments"] == candidates  # the same consumer's queue
    bindings = {
        (b["source"], b["destination"], b["routing_key"])
        for b in vhost.management.bindings(vhost.name)
    }
    assert ("candidate.found", "publisher.candidates", "#") in bindings
    assert ("job.completed", "ingestor.completions", "#") in bindings
    assert ("tracking.updated", "downstream.tracking-updated", "#") in bindings
    assert ("trackfill.dead-letter", DLQ, PUBLISHER_CANDIDATES) in bindings


def test_a_published_message_is_persistent_json_with_its_id(publisher, pika_channel):
    envelope = candidate(1)
    publisher.publish("candidate.found", "official_website_redirect_to_yamato_tracking", envelope)
    # basic.get is refused on a single-active-consumer quorum queue: consume instead
    method, properties, body = next(
        pika_channel.consume(PUBLISHER_CANDIDATES, auto_ack=True, inactivity_timeout=5)
    )
    assert body == envelope.encode()
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"
    assert properties.message_id == envelope.id
    assert method.routing_key == "official_website_redirect_to_yamato_tracking"


def test_a_message_no_queue_takes_raises(publisher):
    with pytest.raises(PublishError, match="no queue took 1 of 1 messages"):
        publisher.publish("job.published", "x", new_envelope("job.published", {}))


def test_a_message_is_handled_typed_and_acked(publisher, run_loop, ready_count):
    seen: list[Delivery] = []
    loop, stop, thread = run_loop(seen.append)
    publisher.publish("candidate.found", "task", candidate(42))
    assert wait_until(lambda: len(seen) == 1)
    assert seen[0].message == CandidateFound(
        task="official_website_redirect_to_yamato_tracking", purchasing_id=42
    )
    stop.set()
    thread.join(10)
    assert ready_count(PUBLISHER_CANDIDATES) == 0  # acked: nothing came back on close


def test_an_undecodable_body_is_dead_lettered_with_its_reason_and_the_queue_flows(
    publisher, pika_channel, run_loop, vhost
):
    seen: list[Delivery] = []
    run_loop(seen.append)
    # an independent client, no content type, as the management UI would send it
    pika_channel.basic_publish("candidate.found", "task", b"{not json")
    publisher.publish("candidate.found", "task", candidate(7))
    assert wait_until(lambda: len(seen) == 1)
    assert seen[0].message.purchasing_id == 7
    dead = vhost.management.wait_for_messages(vhost.name, DLQ, 1)
    assert len(dead) == 1
    assert dead[0]["payload"] == "{not json"
    headers = dead[0]["properties"]["headers"]
    assert headers[REASON_HEADER].startswith("undecodable: body is not JSON")
    assert headers["x-trackfill-origin-queue"] == PUBLISHER_CANDIDATES


def test_an_invalid_payload_is_dead_lettered_with_the_field_named(publisher, run_loop, vhost):
    run_loop(lambda delivery: None)
    publisher.publish("candidate.found", "task", new_envelope("candidate.found", {"x": 1}))
    dead = vhost.management.wait_for_messages(vhost.name, DLQ, 1)
    assert "purchasing_id is missing" in dead[0]["properties"]["headers"][REASON_HEADER]


def test_a_rejected_message_keeps_the_handlers_reason(publisher, run_loop, vhost, ready_count):
    def handler(delivery):
        raise Reject("purchase 5 does not exist")

    loop, stop, thread = run_loop(handler)
    publisher.publish("candidate.found", "task", candidate(5))
    dead = vhost.management.wait_for_messages(vhost.name, DLQ, 1)
    assert dead[0]["properties"]["headers"][REASON_HEADER] == "purchase 5 does not exist"
    stop.set()
    thread.join(10)
    assert ready_count(PUBLISHER_CANDIDATES) == 0


def test_a_handler_bug_dead_letters_the_message_instead_of_looping(publisher, run_loop, vhost):
    calls = []

    def handler(delivery):
        calls.append(delivery)
        raise KeyError("boom")

    run_loop(handler)
    publisher.publish("candidate.found", "task", candidate(6))
    dead = vhost.management.wait_for_messages(vhost.name, DLQ, 1)
    assert dead[0]["properties"]["headers"][REASON_HEADER] == "handler error: KeyError: 'boom'"
    assert len(calls) == 1


def test_a_transient_failure_is_retried_in_place(publisher, run_loop, vhost, ready_count):
    attempts = []

    def handler(delivery):
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise Transient("database restarting")

    loop, stop, thread = run_loop(handler)
    publisher.publish("candidate.found", "task", candidate(8))
    assert wait_until(lambda: len(attempts) == 3, timeout=15)
    stop.set()
    thread.join(10)
    assert ready_count(PUBLISHER_CANDIDATES) == 0
    assert vhost.management.get_messages(vhost.name, DLQ) == []
    assert attempts[2] - attempts[1] > attempts[1] - attempts[0]  # backing off


def test_a_message_that_keeps_failing_is_not_requeued_forever(publisher, run_loop, vhost):
    attempts = []

    def handler(delivery):
        attempts.append(1)
        raise Transient("always down")

    run_loop(handler, transient_budget_s=0)
    publisher.publish("candidate.found", "task", candidate(9))
    dead = vhost.management.wait_for_messages(vhost.name, DLQ, 1, timeout=30)
    assert len(dead) == 1
    assert dead[0]["properties"]["headers"]["x-death"][0]["reason"] == "delivery_limit"
    assert len(attempts) == DELIVERY_LIMIT + 1


def test_a_parked_message_comes_back_when_its_ttl_expires(publisher, run_loop):
    seen: list[Delivery] = []
    run_loop(seen.append)
    publisher.publish("", PUBLISHER_WAIT, candidate(11), expiration_s=0.3)
    assert wait_until(lambda: len(seen) == 1)
    assert seen[0].deaths(PUBLISHER_WAIT) == 1
    assert seen[0].message.purchasing_id == 11


def test_stop_ends_the_loop_promptly(run_loop):
    loop, stop, thread = run_loop(lambda delivery: None)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_stop_lets_the_message_in_hand_finish(publisher, run_loop, ready_count):
    finished = []
    started, release = threading.Event(), threading.Event()

    def handler(delivery):
        started.set()
        release.wait(5)
        finished.append(delivery)

    loop, stop, thread = run_loop(handler)
    publisher.publish("candidate.found", "task", candidate(12))
    assert started.wait(10)
    stop.set()
    time.sleep(0.3)
    release.set()
    thread.join(10)
    assert not thread.is_alive() and len(finished) == 1
    assert ready_count(PUBLISHER_CANDIDATES) == 0


def test_a_handler_still_busy_after_the_grace_leaves_its_message_for_redelivery(
    publisher, run_loop, ready_count
):
    started, release = threading.Event(), threading.Event()

    def handler(delivery):
        started.set()
        release.wait(10)

    loop, stop, thread = run_loop(handler, shutdown_grace_s=0.5)
    publisher.publish("candidate.found", "task", candidate(13))
    assert started.wait(10)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    release.set()
    assert wait_until(lambda: ready_count(PUBLISHER_CANDIDATES) == 1)


def test_a_slow_handler_does_not_cost_the_connection(publisher, run_loop, ready_count):
    """Heartbeats every second; a handler busy for 8 s (docs/rabbitmq.md: a blocking sleep in a
    callback loses the connection and the message comes back, a second API call for us)."""
    calls = []

    def handler(delivery):
        calls.append(delivery)
        time.sleep(8)

    loop, stop, thread = run_loop(handler)  # run_loop connects with a 2 s heartbeat
    publisher.publish("candidate.found", "task", candidate(14))
    assert wait_until(lambda: len(calls) == 1)
    time.sleep(10)
    stop.set()
    thread.join(10)
    assert len(calls) == 1
    assert ready_count(PUBLISHER_CANDIDATES) == 0


SERVICE = """
import logging, sys
from shared.lifecycle import stop_on_signals
from shared.messaging.consuming import ConsumerLoop
from shared.messaging.publishing import connect
from shared.contracts import CandidateFound
from shared.messaging.topology import ROUTES
logging.basicConfig(level=logging.INFO)
stop = stop_on_signals()
loop = ConsumerLoop(lambda: connect(sys.argv[1]), ROUTES["publisher.candidates"],
                    lambda d: None, stop, schema=CandidateFound.parse)
loop.run()
print("clean exit", flush=True)
"""


def test_sigterm_stops_a_consumer_process_with_exit_0(vhost):
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", SERVICE, vhost.amqp_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(
            lambda: queue_counts(vhost.amqp_url, PUBLISHER_CANDIDATES)[1] == 1, timeout=15
        )
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 10
        assert "clean exit" in process.stdout.read()
    finally:
        process.kill()


def test_a_batch_is_published_with_one_wait_for_all_confirms(publisher, pika_channel):
    from shared.messaging.publishing import Outgoing

    batch = [Outgoing.of("candidate.found", "task", candidate(n)) for n in range(1, 51)]
    publisher.publish_many(batch)
    received = []
    for method, _, body in pika_channel.consume(PUBLISHER_CANDIDATES, inactivity_timeout=1):
        if method is None:
            break
        pika_channel.basic_ack(method.delivery_tag)
        received.append(body)
    assert received == [m.body for m in batch]


def test_a_batch_with_an_unroutable_message_raises_and_the_channel_stays_usable(publisher):
    from shared.messaging.publishing import Outgoing

    batch = [
        Outgoing.of("candidate.found", "task", candidate(1)),
        Outgoing.of("job.published", "task", new_envelope("job.published", {})),
    ]
    with pytest.raises(PublishError, match="no queue took 1 of 2 messages"):
        publisher.publish_many(batch)
    publisher.publish("candidate.found", "task", candidate(2))


def test_a_connection_closed_by_the_broker_is_reopened_for_the_next_publish(publisher, vhost):
    publisher.publish("candidate.found", "task", candidate(1))
    management = vhost.management
    assert wait_until(
        lambda: (
            management.http.get(
                management._url("vhosts", vhost.name, "connections"), timeout=5
            ).json()
            != []
        ),
        15,
    )
    for connection in management.http.get(
        management._url("vhosts", vhost.name, "connections"), timeout=5
    ).json():
        management.http.delete(management._url("connections", connection["name"]), timeout=5)
    time.sleep(0.5)
    publisher.publish("candidate.found", "task", candidate(2))  # no error: reconnected


def test_a_group_handler_gets_what_has_arrived_and_each_outcome_settles_its_message(
    publisher, run_loop, vhost, ready_count
):
    for purchasing_id in range(1, 6):
        publisher.publish("candidate.found", "task", candidate(purchasing_id))
    groups: list[list[int]] = []

    def handler(deliveries):
        ids = [d.message.purchasing_id for d in deliveries]
        groups.append(ids)
        time.sleep(0.3)  # the rest of the prefetch arrives meanwhile
        outcomes = {3: Reject("purchase 3 is gone"), 4: KeyError("boom")}
        return [outcomes.get(i) for i in ids]

    loop, stop, thread = run_loop(handler, group_size=4)
    assert wait_until(lambda: sum(map(len, groups)) == 5)
    assert [i for group in groups for i in group] == [1, 2, 3, 4, 5]
    assert 3 <= max(map(len, groups)) <= 4  # grouped, and never more than 4 in hand
    dead = vhost.management.wait_for_messages(vhost.name, DLQ, 2)
    reasons = sorted(m["properties"]["headers"][REASON_HEADER] for m in dead)
    assert reasons == ["handler error: KeyError: 'boom'", "purchase 3 is gone"]
    stop.set()
    thread.join(10)
    assert ready_count(PUBLISHER_CANDIDATES) == 0  # the others were acked


def test_only_the_messages_of_a_group_that_failed_transiently_are_handled_again(
    publisher, run_loop, vhost, ready_count
):
    for purchasing_id in (1, 2, 3):
        publisher.publish("candidate.found", "task", candidate(purchasing_id))
    groups: list[list[int]] = []

    def handler(deliveries):
        ids = [d.message.purchasing_id for d in deliveries]
        groups.append(ids)
        first = len(groups) == 1
        return [Transient("database restarting") if first and i == 2 else None for i in ids]

    loop, stop, thread = run_loop(handler, group_size=10)
    assert wait_until(lambda: len(groups) == 2, timeout=15)
    assert groups == [[1, 2, 3], [2]]
    stop.set()
    thread.join(10)
    assert ready_count(PUBLISHER_CANDIDATES) == 0
    assert vhost.management.get_messages(vhost.name, DLQ) == []


def test_a_group_handler_that_breaks_its_promise_dead_letters_instead_of_stopping(
    publisher, run_loop, vhost
):
    run_loop(lambda deliveries: [], group_size=10)  # no outcome, whatever the group
    publisher.publish_many([Outgoing.of("candidate.found", "task", candidate(i)) for i in (1, 2)])
    dead = vhost.management.wait_for_messages(vhost.name, DLQ, 2)
    assert all("did not give" in m["properties"]["headers"][REASON_HEADER] for m in dead)


def test_a_connection_lost_with_messages_in_hand_recovers_and_handles_each_once_more_at_most(
    publisher, vhost, ready_count
):
    """The broker connection drops while a group is in the handler and more messages have
    arrived: after one reconnect every message is handled and acked, none dead-lettered."""
    import socket

    connections = []

    def connect_and_keep():
        connection = connect(vhost.amqp_url, heartbeat_s=2)
        connections.append(connection)
        return connection

    publisher.publish("candidate.found", "task", candidate(1))
    handled: list[int] = []
    after_the_drop: list[bool] = []  # whether each delivery handled then was redelivered
    in_handler, release = threading.Event(), threading.Event()

    def handler(deliveries):
        if handled:
            after_the_drop.extend(d.redelivered for d in deliveries)
        handled.extend(d.message.purchasing_id for d in deliveries)
        if len(handled) == 1:
            in_handler.set()
            release.wait(10)
        return [None] * len(deliveries)

    stop = threading.Event()
    loop = ConsumerLoop(
        connect_and_keep,
        ROUTES[PUBLISHER_CANDIDATES],
        handler,
        stop,
        schema=CandidateFound.parse,
        poll_s=0.1,
        group_size=6,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        assert in_handler.wait(10)
        for purchasing_id in range(2, 7):
            publisher.publish("candidate.found", "task", candidate(purchasing_id))
        assert wait_until(lambda: len(loop._received) == 5)  # the next group has arrived
        consuming = connections[0]  # the loop's own; the worker's publisher connects later
        consuming.connection.sock.shutdown(socket.SHUT_RDWR)  # the network drops
        time.sleep(0.5)
        release.set()
        assert wait_until(lambda: sorted(set(handled)) == [1, 2, 3, 4, 5, 6], timeout=20)
        assert wait_until(lambda: ready_count(PUBLISHER_CANDIDATES) == 0, timeout=10)
    finally:
        release.set()
        stop.set()
        thread.join(15)
    assert ready_count(PUBLISHER_CANDIDATES) == 0  # all acked, none came back on close
    assert vhost.management.get_messages(vhost.name, DLQ) == []
    assert max(handled.count(i) for i in range(1, 7)) <= 2
    # what the dead channel had delivered is void: only RabbitMQ's redeliveries follow
    assert after_the_drop and all(after_the_drop)
    consumer_connections = [c for c in connections if c is not loop._work_connection]
    assert len(consumer_connections) <= 3  # one reconnect (and a spare), not a storm
