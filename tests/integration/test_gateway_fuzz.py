"""2,000 generated webhook requests (hypothesis) against the gateway on a real broker:
random fields, encodings, sizes, tokens, injection strings; deep nesting, control
characters and newlines in every field, NUL, huge and negative numbers, repeated fields
and tokens, multipart and other content types, wrong charsets, bodies just under and
over the size limit. Never a 5xx while the broker is up; nothing queued unless
authenticated and valid; every refusal answered with its reason; every queued message
is one the ingestor's contract accepts."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts import MAX_ID, JobCompleted
from shared.messaging.publishing import connect
from shared.messaging.topology import INGESTOR_COMPLETIONS
from shared.settings import load_settings
from tests.support.rabbit import queue_counts
from webhook_gateway.app import MAX_BODY_BYTES, create_app
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
    "owryt-ab\n2026-12-02 09:00:00,000 INFO trackfill.ingestor FORGED LINE",
    "owryt-a\x00b-0000",
    "owryt-abc12345-0000\r\n",
    "finished\u2028",
    "\x1b[31mred",
    "\x85",
    str(10**15),
    str(-(2**63)),
    "owryt-ABC12345-0000",
    "owryt-abc12345-00001",
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
        "scrapingjob_id": st.integers(min_value=1, max_value=MAX_ID - 1).map(str),
        "status": st.sampled_from(["finished", "failed", "stopped"]),
        "sitemap_id": st.just("1421177"),
        # any text but controls (and lone surrogates, which no encoding carries)
        "sitemap_name": st.text(
            st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40
        ),
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
tokens = st.one_of(tokens, st.just([TOKEN, TOKEN]), st.just([TOKEN, "wrong"]))
encodings = st.sampled_from(
    ["form", "json", "json-list", "bytes", "deep", "repeated", "multipart", "text", "latin-1",
     "utf-16", "near-limit", "over-limit"]
)  # fmt: skip


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


FORM = "application/x-www-form-urlencoded"


def send(client, token, encoding, body):
    # a list of tokens: the token parameter repeated
    url = PATH + ("" if token is None else "?" + urlencode({"token": token}, doseq=True))
    if encoding == "form":
        return client.post(url, data=body)
    if encoding == "json":
        return client.post(url, json=body)
    if encoding == "json-list":
        return client.post(url, json=list(body.items()))
    if encoding == "deep":
        nested = "[" * 3000 + "]" * 3000
        return client.post(url, data=f'{{"status": {nested}}}', content_type="application/json")
    if encoding == "repeated":  # each field twice
        raw = urlencode([(k, v) for k, v in body.items() for _ in (1, 2)])
        return client.post(url, data=raw, content_type=FORM)
    if encoding == "multipart":
        return client.post(url, data=body, content_type="multipart/form-data")
    if encoding == "text":
        return client.post(url, data=urlencode(body), content_type="text/plain")
    if encoding in ("latin-1", "utf-16"):
        raw = json.dumps(body, ensure_ascii=False).encode(encoding, errors="replace")
        return client.post(url, data=raw, content_type=f"application/json; charset={encoding}")
    if encoding in ("near-limit", "over-limit"):
        size = MAX_BODY_BYTES - 50 if encoding == "near-limit" else MAX_BODY_BYTES + 1
        raw = urlencode({**body, "sitemap_name": ""})
        return client.post(url, data=raw + "x" * max(0, size - len(raw)), content_type=FORM)
    raw = json.dumps(body).encode()[::-1]  # bytes that are not what they claim to be
    return client.post(url, data=raw, content_type="application/json")


@settings(
    max_examples=2000,
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
    if answer.status_code >= 400:
        assert reply["error"] and reply["message"]  # every refusal with its reason
    if answer.status_code in (401, 403):
        assert token != TOKEN
    if reply.get("status") == "queued":
        seen["queued"] += 1
        # a JSON body in another charset that still decodes as JSON is the same JSON
        assert token == TOKEN and encoding in ("form", "json", "latin-1", "utf-16")
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
    assert seen["requests"] >= 2100  # the generated tests ran first, in this module
    assert seen["queued"] >= 100
    assert queue_counts(url, INGESTOR_COMPLETIONS)[0] == seen["queued"]
