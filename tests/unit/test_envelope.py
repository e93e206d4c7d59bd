import datetime as dt
import json

import pytest

from shared.contracts import CandidateFound, JobCompleted, JobPublished
from shared.messaging.envelope import MAX_BODY_BYTES, MessageDecodeError, decode, new_envelope


def test_an_envelope_round_trips_through_its_codec():
    sent = new_envelope("candidate.found", {"purchasing_id": 7, "custom_id": "owryt-1-0000"})
    received = decode(sent.encode(), "candidate.found")
    assert received == sent
    assert json.loads(sent.encode())["schema"] == "candidate.found/1"


def test_a_hand_typed_body_without_envelope_fields_is_valid():
    envelope = decode(b'{"purchasing_id": 123}', "candidate.found")
    assert envelope.schema == "candidate.found/1"
    assert dict(envelope.payload) == {"purchasing_id": 123}


def test_a_hand_typed_body_gets_the_same_id_on_every_redelivery():
    body = b'{"purchasing_id": 123}'
    assert decode(body, "candidate.found").id == decode(body, "candidate.found").id


def test_the_amqp_message_id_is_used_when_the_body_has_none():
    assert decode(b'{"a": 1}', "job.completed", message_id="m-1").id == "m-1"


def test_a_utf8_bom_is_tolerated():
    assert decode('\ufeff{"purchasing_id": 1}'.encode(), "candidate.found").payload


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"not json", "not JSON"),
        (b'{"a": NaN}', "NaN is not allowed"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'"text"', "JSON str, not an object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"schema": "job.completed/1"}', "this queue takes 'candidate.found/1'"),
        (b'{"schema": "candidate.found/2"}', "this queue takes"),
        (b'{"id": 5}', "id must be a string"),
        (b'{"created_at": "yesterday"}', "created_at"),
        pytest.param(b"[" * 60_000, "not JSON", id="deeply-nested"),
    ],
)
def test_a_bad_body_raises_one_decode_error_with_a_reason(body, reason):
    with pytest.raises(MessageDecodeError, match=reason):
        decode(body, "candidate.found")


def test_an_oversized_body_is_refused_before_parsing():
    body = b'{"x": "' + b"a" * MAX_BODY_BYTES + b'"}'
    with pytest.raises(MessageDecodeError, match="more than"):
        decode(body, "candidate.found")


def test_a_naive_created_at_is_taken_as_utc():
    envelope = decode(b'{"created_at": "2026-01-02T03:04:05"}', "candidate.found")
    assert envelope.created_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_payload_fields_cannot_shadow_the_envelope():
    with pytest.raises(ValueError, match="reserved"):
        new_envelope("candidate.found", {"schema": "x"})


def test_a_candidate_by_purchasing_id():
    candidate = CandidateFound.parse({"purchasing_id": 123})
    assert candidate.purchasing_id == 123
    assert candidate.task == "official_website_redirect_to_yamato_tracking"


def test_a_candidate_by_order_number_and_email():
    candidate = CandidateFound.parse({"order_number": "W1234567890", "email": "u@example.com"})
    assert (candidate.order_number, candidate.email) == ("W1234567890", "u@example.com")
    assert candidate.purchasing_id is None


def test_a_candidate_id_typed_as_a_string_is_accepted():
    assert CandidateFound.parse({"purchasing_id": "42"}).purchasing_id == 42


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({}, "purchasing_id is missing"),
        ({"purchase_id": 1}, "purchasing_id is missing"),
        ({"purchasing_id": -3}, "positive integer"),
        ({"purchasing_id": True}, "positive integer"),
        ({"purchasing_id": 1.5}, "positive integer"),
        ({"purchasing_id": 1, "order_number": "W1"}, "not both"),
        ({"order_number": "W1234567890"}, "email is missing"),
        ({"email": "u@example.com"}, "order_number is missing"),
        ({"order_number": 1234, "email": "u@example.com"}, "order_number must be a string"),
        ({"purchasing_id": 1, "task": "other"}, "not a known task"),
        ({"purchasing_id": 1, "batch_uuid": "nope"}, "not a UUID"),
        # typed by hand into the management UI: the gateway's field rules
        ({"purchasing_id": 10**16}, "positive integer below"),
        ({"order_number": "W123\n4567890", "email": "u@example.com"}, "control character"),
        ({"order_number": "W1234567890", "email": "u@example.com\x00"}, "control character"),
        ({"purchasing_id": 1, "custom_id": "owryt-1-2"}, "not a custom id of task"),
        ({"purchasing_id": 1, "custom_id": "owryt-abc12345-0000\r"}, "control character"),
    ],
)
def test_a_bad_candidate_is_refused_with_a_reason(payload, reason):
    with pytest.raises(MessageDecodeError, match=reason):
        CandidateFound.parse(payload)


def test_a_job_completed_takes_the_webhooks_string_fields():
    completed = JobCompleted.parse(
        {
            "scrapingjob_id": "500",
            "status": "finished",
            "sitemap_id": "1421177",
            "sitemap_name": "apple",
            "custom_id": "owryt-abc12345-0000",
        }
    )
    assert (completed.scraping_job_id, completed.sitemap_id) == (500, 1421177)


GOOD_COMPLETED = {
    "scrapingjob_id": "500",
    "status": "finished",
    "custom_id": "owryt-abc12345-0000",
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"custom_id": "owryt-zz"}, "not a custom id of task"),
        ({"custom_id": "owryt-abc12345-0000\nFORGED"}, "control character"),
        ({"scrapingjob_id": str(10**15)}, "positive integer below"),
        ({"status": "Finished"}, "lower-case word"),
    ],
)
def test_a_bad_job_completed_typed_by_hand_is_refused_with_a_reason(change, reason):
    with pytest.raises(MessageDecodeError, match=reason):
        JobCompleted.parse({**GOOD_COMPLETED, **change})


def test_an_unknown_status_is_parsed_and_marked_unknown():
    assert not JobCompleted.parse({**GOOD_COMPLETED, "status": "archived"}).status_known
    assert JobCompleted.parse(GOOD_COMPLETED).status_known


def test_contract_payloads_round_trip():
    published = JobPublished(
        task="official_website_redirect_to_yamato_tracking",
        custom_id="owryt-a-0000",
        scraping_job_id=9,
        batch_uuid="12345678-1234-5678-1234-567812345678",
        target_url="https://store.apple.com/x",
        purchasing_id=3,
    )
    assert JobPublished.parse(published.to_payload()) == published
