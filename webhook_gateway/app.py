"""The webhook receiver: Web Scraper's "finished job notification" becomes one confirmed
``job.completed`` message, and only then a 2xx (docs/webscraper-api.md: the service retries
an answer that is slow or >= 300, so a 503 when RabbitMQ cannot confirm is a retry, not
a loss). No database work here: the answer must be fast. The views are
:mod:`webhook_gateway.views`; this module only wires them."""

from __future__ import annotations

from flask import Flask

from shared.settings import Settings
from shared.tasks import TRACKING_TASK_CONFIGS
from webhook_gateway import errors, views
from webhook_gateway.parts import Broker, Parts

MAX_BODY_BYTES = 16 * 1024


def create_app(settings: Settings, broker: Broker) -> Flask:
    """The gateway's Flask app: the webhook path of every registered task, and /healthz."""
    if not settings.webhook_token:
        raise ValueError("WEBHOOK_TOKEN must be set")
    app = Flask("webhook_gateway")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["trackfill"] = Parts(broker, settings.webhook_token.encode())
    errors.register(app)
    # one endpoint per path keyword; the tasks that share one (the seed's tasks all
    # post to webscraper-tracking) are told apart by their custom id's prefix
    for keyword in dict.fromkeys(task.path_keyword for task in TRACKING_TASK_CONFIGS.values()):
        app.add_url_rule(
            f"/api/acquisition/webscraper/{keyword}/",
            f"webhook_{keyword}",
            views.receive,
            methods=["POST"],
            defaults={"path_keyword": keyword},
        )
    app.add_url_rule("/healthz", "healthz", views.healthz, methods=["GET"])
    return app
