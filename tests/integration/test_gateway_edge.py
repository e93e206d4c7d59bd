"""Bad input at the gateway's edge, row by row as it was probed by hand (issue 18): a
clear 4xx with its reason, nothing queued, and no log line forged."""

from __future__ import annotations

import logging

import pytest

from shared.logs import OneLineFormatter
from shared.messaging.publishing import connect
from shared.messaging.topology import INGESTOR_COMPLETIONS
from shared.settings import load_settings
from tests.support.rabbit import payload_json, queue_counts
from webhook_gateway.app import MAX_BODY_BYTES, create_app
from webhook_gateway.broker import GroupPublisher

pytestmark = pytest.mark.integration
TOKEN = "edge-webhook-token-0123456789abcdef"
PATH = "/api/acquisition/webscraper/webscraper-tracking/"
FORM = "scrapingjob_id=500&status=finished&sitemap_id=1421177&custom_id=owryt-abc12345-0000"
FORGED = "owryt-ab\n2026-12-02 09:00:00,000 INFO trackfill.ingestor FORGED LINE"
FORM_TYPE = "application/x-www-form-urlencoded"


@pytest.fixture
def client(vhost):
    broker = GroupPublisher(lambda: connect(vhost.amqp_url, 5))
    app = create_app(load_settings({"AMQP_URL": vhost.amqp_url, "WEBHOOK_TOKEN": TOKEN}), broker)
    broker.check()
    yield app.test_client()
    broker.close()


def deep(depth: int) -> bytes:
    return b'{"custom_id": ' + b"[" * depth + b"]" * depth + b"}"


#: (row, query, content type, body, status, reason in the answer)
PROBES = [
    ("json nested 5,000 deep", f"?token={TOKEN}", "application/json", deep(5000), 400,
     "nested too deeply"),
    ("custom_id forging a log line", f"?token={TOKEN}", FORM_TYPE,
     FORM.replace("owryt-abc12345-0000", FORGED.replace("\n", "%0A")), 400,
     "custom_id contains a control character"),
    ("custom_id with NUL", f"?token={TOKEN}", FORM_TYPE,
     FORM.replace("owryt-abc12345-0000", "owryt-a%00b-0000"), 400,
     "custom_id contains a control character"),
    ("custom_id of another shape", f"?token={TOKEN}", FORM_TYPE,
     FORM.replace("owryt-abc12345-0000", "owryt-../../etc"), 400,
     "is not a custom id of task"),
    ("custom_id with a fifth field", f"?token={TOKEN}", FORM_TYPE,
     FORM.replace("owryt-abc12345-0000", "owryt-abc12345-0000-1"), 400,
     "is not a custom id of task"),
    ("scrapingjob_id twice", f"?token={TOKEN}", FORM_TYPE, FORM + "&scrapingjob_id=2", 400,
     "scrapingjob_id is given 2 times"),
    ("token twice", f"?token={TOKEN}&token=wrong", FORM_TYPE, FORM, 400,
     "token query parameter is given more than once"),
    ("multipart body", f"?token={TOKEN}", "multipart/form-data; boundary=x",
     b"--x\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nfinished\r\n--x--\r\n",
     415, "send application/x-www-form-urlencoded or application/json"),
    ("text body", f"?token={TOKEN}", "text/plain", FORM, 415, "text/plain is not"),
    ("json in latin-1", f"?token={TOKEN}", "application/json",
     '{"custom_id": "owryt-abc12345-0000", "status": "é"}'.encode("latin-1"), 400,
     "the body is not JSON"),
    ("a huge id", f"?token={TOKEN}", FORM_TYPE, FORM.replace("=500", "=" + "9" * 400), 400,
     "scrapingjob_id must be a positive integer below"),
    ("a negative id", f"?token={TOKEN}", FORM_TYPE, FORM.replace("=500", "=-500"), 400,
     "scrapingjob_id must be a positive integer below"),
    ("status with a newline", f"?token={TOKEN}", FORM_TYPE,
     FORM.replace("finished", "finished%0A"), 400, "status contains a control character"),
    ("body over the limit", f"?token={TOKEN}", FORM_TYPE,
     FORM + "&sitemap_name=" + "x" * MAX_BODY_BYTES, 413, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    "query,content_type,body,status,reason",
    [row[1:] for row in PROBES],
    ids=[row[0] for row in PROBES],
)
def test_each_probe_is_refused_with_its_reason_and_nothing_is_queued_or_forged(
    client, vhost, caplog, query, content_type, body, status, reason
):
    caplog.set_level(logging.DEBUG)
    answer = client.post(PATH + query, data=body, content_type=content_type)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.json["message"] and reason in answer.json["message"]
    assert queue_counts(vhost.amqp_url, INGESTOR_COMPLETIONS)[0] == 0
    lines = [OneLineFormatter().format(record) for record in caplog.records]
    assert not any("\n" in line or "\x00" in line for line in lines)


def test_a_body_just_under_the_limit_is_taken(client, vhost):
    padding = MAX_BODY_BYTES - len(FORM) - len("&sitemap_name=") - 1
    answer = client.post(
        f"{PATH}?token={TOKEN}", data=FORM + "&sitemap_name=" + "x" * padding,
        content_type=FORM_TYPE,
    )  # fmt: skip
    assert answer.status_code == 400 and "sitemap_name is longer than 200" in answer.json["message"]
    short = FORM + "&sitemap_name=" + "x" * 200
    assert (
        client.post(f"{PATH}?token={TOKEN}", data=short, content_type=FORM_TYPE).status_code == 200
    )


def test_an_unknown_status_is_kept_queued_and_logged(client, vhost, caplog):
    answer = client.post(
        f"{PATH}?token={TOKEN}", data=FORM.replace("finished", "archived"), content_type=FORM_TYPE
    )
    assert answer.status_code == 200 and answer.json["status"] == "queued"
    (message,) = vhost.management.wait_for_messages(vhost.name, INGESTOR_COMPLETIONS, 1)
    assert payload_json(message)["status"] == "archived"
    assert any("unknown status 'archived'" in r.getMessage() for r in caplog.records)
