"""The webhook receiver: Web Scraper's "finished job notification" becomes one confirmed
``job.completed`` message, and only then a 2xx (WEBSCRAPER_API.md: the service retries
an answer that is slow or >= 300, so a 503 when RabbitMQ cannot confirm is a retry, not
a loss). No database work here: the answer must be fast."""

from __future__ import annotations

import hmac
import logging
from typing import Any, Protocol

from flask import Flask, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from shared.contracts import JobCompleted
from shared.messaging.envelope import MessageDecodeError, new_envelope
from shared.messaging.topology import JOB_COMPLETED
from shared.metrics import WEBHOOKS
from shared.settings import Settings
from shared.tasks import TRACKING_TASK_CONFIGS, task_for_custom_id
from webhook_gateway import errors

log = logging.getLogger("trackfill.gateway")
FIELDS = ("scrapingjob_id", "status", "sitemap_id", "sitemap_name", "custom_id")
MAX_BODY_BYTES = 16 * 1024


class Broker(Protocol):
    def publish(self, exchange: str, routing_key: str, envelope: Any) -> None: ...

    def check(self) -> None: ...


def create_app(settings: Settings, broker: Broker, registry: CollectorRegistry = REGISTRY) -> Flask:
    """The gateway's Flask app: the webhook path of every registered task, and /healthz."""
    if not settings.webhook_token:
        raise ValueError("WEBHOOK_TOKEN must be set")
    app = Flask("webhook_gateway")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    errors.register(app)
    expected = settings.webhook_token.encode()

    def receive(task_name: str):
        _check_token(request.args.get("token"), expected)
        fields = _fields()
        custom_id = fields.get("custom_id") or ""
        task = task_for_custom_id(custom_id) if isinstance(custom_id, str) else None
        if task is None or task.name != task_name:
            log.info(
                "[webhook] ignored: custom_id %r is not a %s job", str(custom_id)[:100], task_name
            )
            WEBHOOKS.labels("ignored").inc()
            return jsonify(status="ignored", reason="custom_id of no known task"), 200
        # a webhook is never the reconciler's hint, whatever its body says
        event = JobCompleted.parse({**fields, "task": task.name, "reconcile": False})
        envelope = new_envelope(JOB_COMPLETED, event.to_payload())
        broker.publish(JOB_COMPLETED, task.name, envelope)
        log.info(
            "[webhook] queued job.completed: custom_id=%s job_id=%s status=%s",
            event.custom_id,
            event.scrapingjob_id,
            event.status,
        )
        WEBHOOKS.labels("queued").inc()
        return jsonify(status="queued", id=envelope.id), 200

    for task in TRACKING_TASK_CONFIGS.values():
        app.add_url_rule(
            f"/api/acquisition/webscraper/{task.path_keyword}/",
            f"webhook_{task.name}",
            receive,
            methods=["POST"],
            defaults={"task_name": task.name},
        )

    @app.get("/metrics")
    def metrics():
        return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    @app.get("/healthz")
    def healthz():
        broker.check()
        return jsonify(status="ok", broker="ok"), 200

    return app


def _check_token(given: str | None, expected: bytes) -> None:
    if not given:
        raise errors.TokenMissing("the token query parameter is missing")
    if not hmac.compare_digest(given.encode(), expected):
        raise errors.TokenWrong("the token is wrong")


def _fields() -> dict[str, Any]:
    """The notification's fields from a form body (as the service sends them) or JSON."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise MessageDecodeError("the JSON body is not an object")
        values = {name: body.get(name) for name in FIELDS}
    else:
        values = {name: request.form.get(name) for name in FIELDS}
    return {name: _as_text(name, value) for name, value in values.items() if value is not None}


def _as_text(name: str, value: Any) -> str:
    """Every field is a string on the wire; JSON numbers are accepted for the ids."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MessageDecodeError(f"{name} must be a string, got {type(value).__name__}")
    return str(value).strip()
