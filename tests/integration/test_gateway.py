"""The webhook gateway on real RabbitMQ: Flask's test client for the HTTP contract, the
real waitress server for the process, and the simulator's own webhooks end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
import requests

from demo.stack import free_port
from shared.messaging.publishing import connect
from shared.messaging.topology import INGESTOR_COMPLETIONS
from shared.settings import load_settings
from tests.conftest import SIM_TOKEN
from tests.support.rabbit import payload_json, queue_counts
from tests.support.waiting import wait_until
from webhook_gateway.__main__ import build
from webhook_gateway.app import create_app
from webhook_gateway.broker import GroupPublisher

pytestmark = pytest.mark.integration
TOKEN = "webhook-secret-0123456789abcdef"
PATH = "/api/acquisition/webscraper/webscraper-tracking/"
FORM = {
    "scrapingjob_id": "500",
    "status": "finished",
    "sitemap_id": "1421177",
    "sitemap_name": "apple-order-tracking",
    "custom_id": "owryt-abc12345-0000",
}


def settings_for(amqp_url: str, **extra: str):
    return load_settings({"AMQP_URL": amqp_url, "WEBHOOK_TOKEN": TOKEN, **extra})


@pytest.fixture
def broker(vhost):
    publishers = GroupPublisher(lambda: connect(vhost.amqp_url, 5))
    yield publishers
    publishers.close()


@pytest.fixture
def client(vhost, broker):
    return create_app(settings_for(vhost.amqp_url), broker).test_client()


def queued(vhost) -> list[dict]:
    return [payload_json(m) for m in vhost.messages(INGESTOR_COMPLETIONS)]


def test_a_form_body_as_the_service_sends_it_is_queued_as_job_completed(client, vhost):
    answer = client.post(f"{PATH}?token={TOKEN}", data=FORM)
    assert answer.status_code == 200 and answer.json["status"] == "queued"
    (message,) = vhost.management.wait_for_messages(vhost.name, INGESTOR_COMPLETIONS, 1)
    body = payload_json(message)
    assert body["schema"] == "job.completed/1" and body["id"] == answer.json["id"]
    assert body["scrapingjob_id"] == 500 and body["sitemap_id"] == 1421177
    assert body["status"] == "finished" and body["custom_id"] == FORM["custom_id"]
    assert body["task"] == "official_website_redirect_to_yamato_tracking"
    assert message["properties"]["delivery_mode"] == 2


def test_both_tasks_post_to_the_one_endpoint_and_the_prefix_routes_each(client, vhost):
    refresh = {**FORM, "scrapingjob_id": "501", "custom_id": "jpt10-abc12345-0003"}
    for form in (refresh, FORM):
        assert client.post(f"{PATH}?token={TOKEN}", data=form).json["status"] == "queued"
    messages = vhost.management.wait_for_messages(vhost.name, INGESTOR_COMPLETIONS, 2)
    routed = {
        payload_json(m)["custom_id"]: (m["routing_key"], payload_json(m)["task"]) for m in messages
    }
    assert routed == {
        "jpt10-abc12345-0003": ("japan_post_tracking_10_tracking_number",) * 2,
        "owryt-abc12345-0000": ("official_website_redirect_to_yamato_tracking",) * 2,
    }


def test_a_json_body_is_accepted_too(client, vhost):
    answer = client.post(f"{PATH}?token={TOKEN}", json={**FORM, "scrapingjob_id": 501})
    assert answer.status_code == 200
    (message,) = vhost.management.wait_for_messages(vhost.name, INGESTOR_COMPLETIONS, 1)
    assert payload_json(message)["scrapingjob_id"] == 501


def test_a_webhook_can_never_pose_as_the_reconcilers_hint(client, vhost):
    answer = client.post(f"{PATH}?token={TOKEN}", json={**FORM, "reconcile": True})
    assert answer.status_code == 200
    (message,) = vhost.management.wait_for_messages(vhost.name, INGESTOR_COMPLETIONS, 1)
    assert "reconcile" not in payload_json(message)


@pytest.mark.parametrize(
    "query,status,code",
    [
        ("", 401, "token_missing"),
        ("?token=", 401, "token_missing"),
        ("?token=nope", 403, "token_wrong"),
        (f"?token={TOKEN}x", 403, "token_wrong"),
        (f"?token={TOKEN[:-1]}", 403, "token_wrong"),
    ],
)
def test_a_missing_or_wrong_token_is_refused_and_nothing_is_queued(
    client, vhost, query, status, code
):
    answer = client.post(f"{PATH}{query}", data=FORM)
    assert answer.status_code == status and answer.json["error"] == code
    assert TOKEN not in answer.get_data(as_text=True)
    assert queue_counts(vhost.amqp_url, INGESTOR_COMPLETIONS)[0] == 0


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"scrapingjob_id": None}, "scrapingjob_id is missing"),
        ({"scrapingjob_id": "abc"}, "scrapingjob_id must be a positive integer"),
        ({"scrapingjob_id": "-5"}, "scrapingjob_id must be a positive integer"),
        ({"scrapingjob_id": "0"}, "scrapingjob_id must be a positive integer"),
        ({"scrapingjob_id": "9" * 30}, "scrapingjob_id must be a positive integer"),
        ({"status": None}, "status is missing"),
        ({"status": "FINISHED; DROP TABLE"}, "status must be a lower-case word"),
        ({"status": "x" * 60}, "status is longer than 50"),
        ({"sitemap_id": "1421177abc"}, "sitemap_id must be a positive integer"),
        ({"custom_id": "owryt-" + "a" * 200}, "custom_id is longer than 100"),
    ],
)
def test_each_malformed_field_is_a_400_with_its_reason(client, vhost, change, reason):
    form = {k: v for k, v in {**FORM, **change}.items() if v is not None}
    answer = client.post(f"{PATH}?token={TOKEN}", data=form)
    assert answer.status_code == 400 and answer.json["error"] == "bad_request"
    assert reason in answer.json["message"]
    assert queue_counts(vhost.amqp_url, INGESTOR_COMPLETIONS)[0] == 0


@pytest.mark.parametrize("body", [b"[1,2]", b"{not json", b'"text"'])
def test_a_json_body_that_is_not_an_object_is_a_400(client, body):
    answer = client.post(f"{PATH}?token={TOKEN}", data=body, content_type="application/json")
    assert answer.status_code == 400 and answer.json["error"] == "bad_request"


@pytest.mark.parametrize("custom_id", [None, "", "other-abc-0001", "OWRYT-abc12345-0000"])
def test_an_unknown_custom_id_prefix_is_answered_ignored_and_nothing_is_queued(
    client, vhost, custom_id
):
    form = {k: v for k, v in {**FORM, "custom_id": custom_id}.items() if v is not None}
    answer = client.post(f"{PATH}?token={TOKEN}", data=form)
    assert answer.status_code == 200 and answer.json["status"] == "ignored"
    assert queue_counts(vhost.amqp_url, INGESTOR_COMPLETIONS)[0] == 0


def test_an_oversized_body_is_a_413(client):
    answer = client.post(f"{PATH}?token={TOKEN}", data={**FORM, "sitemap_name": "x" * 40_000})
    assert answer.status_code == 413 and answer.json["error"] == "request_entity_too_large"


def test_other_methods_and_paths_answer_from_the_error_table(client):
    assert client.get(f"{PATH}?token={TOKEN}").json["error"] == "method_not_allowed"
    assert client.post("/api/acquisition/webscraper/other/").status_code == 404


def test_the_broker_unavailable_is_a_503_and_nothing_is_lost(vhost):
    port = free_port()  # nothing listens there
    down = GroupPublisher(lambda: connect(f"amqp://guest:guest@127.0.0.1:{port}//", 5, 1))
    client = create_app(settings_for(vhost.amqp_url), down).test_client()
    answer = client.post(f"{PATH}?token={TOKEN}", data=FORM)
    assert answer.status_code == 503 and answer.json["error"] == "broker_unavailable"
    assert client.get("/healthz").status_code == 503
    # the service retries the same notification later, when the broker is back
    up = GroupPublisher(lambda: connect(vhost.amqp_url, 5))
    retried = create_app(settings_for(vhost.amqp_url), up).test_client()
    assert retried.post(f"{PATH}?token={TOKEN}", data=FORM).status_code == 200
    assert len(vhost.management.wait_for_messages(vhost.name, INGESTOR_COMPLETIONS, 1)) == 1
    up.close()


def test_healthz_answers_ok_when_the_broker_is_reachable(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json == {"status": "ok", "broker": "ok"}


def test_threads_publish_side_by_side_without_losing_a_message(vhost, broker):
    client_app = create_app(settings_for(vhost.amqp_url), broker)
    answers: list[int] = []

    def send(n: int) -> None:
        with client_app.test_client() as c:
            for i in range(10):
                form = {**FORM, "scrapingjob_id": str(1000 + n * 10 + i)}
                answers.append(c.post(f"{PATH}?token={TOKEN}", data=form).status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert answers == [200] * 40
    ids = {m["scrapingjob_id"] for m in queued(vhost)}
    assert ids == {1000 + k for k in range(40)}


def test_the_simulators_own_webhooks_reach_the_queue_through_the_real_server(vhost, sim):
    port = free_port()
    settings = settings_for(vhost.amqp_url, GATEWAY_BIND=f"127.0.0.1:{port}", GATEWAY_THREADS="4")
    server, publishers = build(settings)
    publishers.check()  # declares the topology: the queue exists before the webhook comes
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        sim.state.config.webhook_url = f"http://127.0.0.1:{port}{PATH}?token={TOKEN}"
        body = {
            "sitemap_id": 1421177,
            "driver": "fulljs",
            "start_urls": ["https://store.apple.com/go/jp/vieworder/W1234567890/u@example.com"],
            "custom_id": "owryt-abc12345-0007",
        }
        created = requests.post(
            f"{sim.api_url}scraping-job", params={"api_token": SIM_TOKEN}, json=body, timeout=5
        ).json()["data"]
        messages = vhost.management.wait_for_messages(vhost.name, INGESTOR_COMPLETIONS, 1)
        (event,) = [payload_json(m) for m in messages]
        assert event["scrapingjob_id"] == created["id"] and event["custom_id"] == body["custom_id"]
        assert wait_until(lambda: sim.state.snapshot()["webhooks"])[0]["outcome"] == 200
    finally:
        sim.state.config.webhook_url = None
        server.close()
        publishers.close()


def test_the_gateway_process_refuses_to_start_without_its_token_and_stops_on_sigterm(vhost):
    env = {**os.environ, "AMQP_URL": vhost.amqp_url, "WEBHOOK_TOKEN": ""}
    missing = subprocess.run(
        [sys.executable, "-m", "webhook_gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 2 and "WEBHOOK_TOKEN is required" in missing.stderr
    port = free_port()
    env.update(WEBHOOK_TOKEN=TOKEN, GATEWAY_BIND=f"127.0.0.1:{port}")
    process = subprocess.Popen(
        [sys.executable, "-m", "webhook_gateway"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        up = wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz"), timeout=20)
        assert up == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
    assert TOKEN not in process.stderr.read()


def _get(url: str) -> int | None:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None
