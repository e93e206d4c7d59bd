"""1,000 generated webhook requests (hypothesis) against the gateway on a real broker:
random fields, encodings, sizes, tokens, injection strings. Never a 5xx while the broker
is up; nothing queued unless authenticated and valid; every queued message is one the
ingestor's contract accepts."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts import JobCompleted
from shared.messaging.publishing import connect
from shared.messaging.topology import INGESTOR_COMPLETIONS
from shared.settings import load_settings
from tests.support.rabbit import queue_counts
from webhook_gateway.app import create_app
from webhook_gateway.broker import GroupPublisher

pytestmark = pytest.mark.integration
TOKEN = "fuzz-webhook-token-0123456789abcdef"
PATH = "/api/acquisition/webscraper/webscraper-tracking/"
NASTY = [
    "' OR 1=1; DROP TABLE purchasing; --",
    "../../etc/passwd",
    "%2e%2e%2f%2e%2e%2f",
    "<script>alert(1)</script>",
    "\x00\x01\x02",
    "owryt-abc12345-0000\nX-Injected: 1",
    "９９９",
    "1e309",
    "-1",
    "0",
    "999999999999999999999999999",
    "finished",
    "failed",
    "owryt-abc12345-0001",
    "",
]
FIELDS = ("scrapingjob_id", "status", "sitemap_id", "sitemap_name", "custom_id")
values = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=50),
    st.text(min_size=100, max_size=3000),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
valid = st.fixed_dictionaries(
    {
        "scrapingjob_id": st.integers(min_value=1, max_value=2**62).map(str),
        "status": st.sampled_from(["finished", "failed", "stopped"]),
        "sitemap_id": st.just("1421177"),
        "sitemap_name": st.text(max_size=40),
        "custom_id": st.from_regex(r"owryt-[0-9a-f]{8}-[0-9]{4}", fullmatch=True),
    }
)
#: mostly random; a fifth of the bodies valid, then one field spoiled or not
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS + ("extra", "token")), values, max_size=7),
    st.tuples(valid, st.sampled_from((None, *FIELDS)), values).map(
        lambda t: t[0] if t[1] is None else {**t[0], t[1]: t[2]}
    ),
)
tokens = st.sampled_from([None, "", TOKEN, TOKEN + "x", TOKEN.upper(), "' OR '1'='1", "ü" * 40])
encodings = st.sampled_from(["form", "json", "json-list", "bytes"])


@pytest.fixture(scope="module")
def gateway(rabbitmq):
    """One vhost and app for the 1,000 requests (the module shares them)."""
    amqp_url, management = rabbitmq
    name = "trackfill-fuzz"
    management.delete_vhost(name)
    management.create_vhost(name)
    url = amqp_url.rsplit("/", 1)[0] + "/" + name
    broker = GroupPublisher(lambda: connect(url, 5))
    app = create_app(load_settings({"AMQP_URL": url, "WEBHOOK_TOKEN": TOKEN}), broker)
    broker.check()  # the topology exists: the queue can be counted from the start
    seen = {"queued": 0, "requests": 0}
    yield app.test_client(), url, seen
    broker.close()
    management.delete_vhost(name)


def send(client, token, encoding, body):
    query = "" if token is None else "?" + urlencode({"token": token})
    if encoding == "form":
        return client.post(PATH + query, data=body)
    if encoding == "json":
        return client.post(PATH + query, json=body)
    if encoding == "json-list":
        return client.post(PATH + query, json=list(body.items()))
    raw = json.dumps(body).encode()[::-1]  # bytes that are not what they claim to be
    return client.post(PATH + query, data=raw, content_type="application/json")


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(token=tokens, encoding=encodings, body=bodies)
def test_generated_webhooks_never_fail_and_queue_only_the_valid(gateway, token, encoding, body):
    client, url, seen = gateway
    answer = send(client, token, encoding, body)
    seen["requests"] += 1
    assert answer.status_code < 500, answer.get_data(as_text=True)
    reply = answer.get_json()
    assert isinstance(reply, dict)  # always JSON, from the one error table
    if answer.status_code in (401, 403):
        assert token != TOKEN
    if reply.get("status") == "queued":
        seen["queued"] += 1
        assert token == TOKEN and encoding in ("form", "json")
        parsed = JobCompleted.parse(
            {**body, "task": "official_website_redirect_to_yamato_tracking"}
        )
        assert parsed.custom_id.startswith("owryt-")
    else:
        assert answer.status_code != 200 or reply.get("status") == "ignored"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(encoding=st.sampled_from(["form", "json"]), body=valid)
def test_generated_valid_webhooks_are_all_queued(gateway, encoding, body):
    client, url, seen = gateway
    answer = send(client, TOKEN, encoding, body)
    seen["requests"] += 1
    assert answer.status_code == 200 and answer.get_json()["status"] == "queued"
    seen["queued"] += 1


def test_the_queue_holds_exactly_the_accepted_ones(gateway):
    client, url, seen = gateway
    assert seen["requests"] >= 1100  # the generated tests ran first, in this module
    assert seen["queued"] >= 100
    assert queue_counts(url, INGESTOR_COMPLETIONS)[0] == seen["queued"]
