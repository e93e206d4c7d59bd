"""The gateway's views are module-level functions: called alone, inside a request of an
app that create_app wired with an in-memory broker (the same two methods as the real)."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from shared.messaging.envelope import MessageDecodeError
from shared.messaging.publishing import PublishError
from shared.settings import load_settings
from webhook_gateway import errors, views
from webhook_gateway.app import create_app

TOKEN = "webhook-secret-0123456789abcdef"


class MemoryBroker:
    def __init__(self, up: bool = True):
        self.published: list[tuple[str, str, object]] = []
        self.up = up

    def publish(self, exchange: str, routing_key: str, envelope) -> None:
        self.published.append((exchange, routing_key, envelope))

    def check(self) -> None:
        if not self.up:
            raise PublishError("RabbitMQ is down")


def app_with(broker: MemoryBroker):
    return create_app(load_settings({"WEBHOOK_TOKEN": TOKEN}), broker)


def test_the_webhook_view_alone_queues_one_job_completed_for_a_known_task():
    broker = MemoryBroker()
    form = {"scrapingjob_id": "500", "status": "finished", "custom_id": "owryt-abc12345-0000"}
    with app_with(broker).test_request_context(f"/?token={TOKEN}", method="POST", data=form):
        body, status = views.receive("webscraper-tracking")
    assert status == 200 and body.json["status"] == "queued"
    ((exchange, task, envelope),) = broker.published
    assert (exchange, task) == ("job.completed", "official_website_redirect_to_yamato_tracking")
    assert envelope.payload["scrapingjob_id"] == 500


def test_the_webhook_view_alone_refuses_a_wrong_token_and_queues_nothing():
    broker = MemoryBroker()
    request = app_with(broker).test_request_context("/?token=wrong", method="POST", data={})
    with request, pytest.raises(errors.TokenWrong):
        views.receive("webscraper-tracking")
    assert broker.published == []


def test_the_webhook_view_alone_refuses_a_field_given_twice():
    data = MultiDict([("scrapingjob_id", "1"), ("scrapingjob_id", "2")])
    request = app_with(MemoryBroker()).test_request_context(
        f"/?token={TOKEN}", method="POST", data=data
    )
    with request, pytest.raises(MessageDecodeError, match="given 2 times"):
        views.receive("webscraper-tracking")


def test_the_health_view_alone_asks_the_broker():
    with app_with(MemoryBroker(up=True)).test_request_context("/healthz"):
        assert views.healthz()[1] == 200
    down = app_with(MemoryBroker(up=False)).test_request_context("/healthz")
    with down, pytest.raises(PublishError):
        views.healthz()
