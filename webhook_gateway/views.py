"""The gateway's views, at module level: the webhook of every registered task, and
/healthz. They find the app's parts (its broker and token) in
``current_app.extensions["trackfill"]``, set by :func:`webhook_gateway.app.create_app`."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import current_app, jsonify, request

from shared.contracts import JobCompleted
from shared.domain.text import has_control
from shared.messaging.envelope import MessageDecodeError, new_envelope
from shared.messaging.topology import JOB_COMPLETED
from shared.metrics import WEBHOOKS
from shared.tasks import task_for_custom_id
from webhook_gateway import errors
from webhook_gateway.parts import FIELDS, FORM_TYPES, Parts

log = logging.getLogger("trackfill.gateway")


def receive(path_keyword: str):
    """A finished-job notification: one confirmed ``job.completed``, then 200."""
    parts = _parts()
    _check_token(_token(), parts.token)
    fields = _fields()
    custom_id = fields.get("custom_id") or ""
    task = task_for_custom_id(custom_id) if isinstance(custom_id, str) else None
    if task is None or task.path_keyword != path_keyword:
        return _ignored(str(custom_id), path_keyword)
    # a webhook is never the reconciler's hint, whatever its body says
    event = JobCompleted.parse({**fields, "task": task.name, "reconcile": False})
    if not event.status_known:  # kept: the ingestor asks the API what it is
        log.warning("[webhook] %s: unknown status %r, queued", event.custom_id, event.status)
    envelope = new_envelope(JOB_COMPLETED, event.to_payload())
    parts.broker.publish(JOB_COMPLETED, task.name, envelope)
    log.info(
        "[webhook] queued job.completed: custom_id=%s job_id=%s status=%s",
        event.custom_id,
        event.scraping_job_id,
        event.status,
    )
    WEBHOOKS.labels("queued").inc()
    return jsonify(status="queued", id=envelope.id), 200


def healthz():
    """200 while RabbitMQ answers; else the error table's 503."""
    _parts().broker.check()
    return jsonify(status="ok", broker="ok"), 200


def _parts() -> Parts:
    return current_app.extensions["trackfill"]


def _ignored(custom_id: str, path_keyword: str):
    """A custom_id of no task of this path: 200, so the service does not retry it for
    ever, and a log line."""
    log.info(
        "[webhook] ignored: custom_id %r is not a job of a task of %s",
        custom_id[:100],
        path_keyword,
    )
    WEBHOOKS.labels("ignored").inc()
    return jsonify(status="ignored", reason="custom_id of no known task"), 200


def _token() -> str | None:
    given = request.args.getlist("token")
    if len(given) > 1:
        raise MessageDecodeError("the token query parameter is given more than once")
    return given[0] if given else None


def _check_token(given: str | None, expected: bytes) -> None:
    if not given:
        raise errors.TokenMissing("the token query parameter is missing")
    if not hmac.compare_digest(given.encode(), expected):
        raise errors.TokenWrong("the token is wrong")


def _fields() -> dict[str, Any]:
    """The notification's fields from a form body (as the service sends them) or JSON:
    one value per field, each a string (or a JSON number for the ids)."""
    if request.mimetype == "application/json":
        body = _json_body()
        values = {name: body.get(name) for name in FIELDS}
    elif request.mimetype in FORM_TYPES or not request.content_length:
        values = {}
        for name in FIELDS:
            given = request.form.getlist(name)
            if len(given) > 1:
                raise MessageDecodeError(f"{name} is given {len(given)} times; give it once")
            values[name] = given[0] if given else None
    else:
        raise errors.UnsupportedType(
            f"a {request.mimetype or 'body without a content type'} is not a notification: "
            "send application/x-www-form-urlencoded or application/json"
        )
    return {name: _as_text(name, value) for name, value in values.items() if value is not None}


def _json_body() -> dict[str, Any]:
    """The body as a JSON object; a 400 for anything the decoder cannot take (not JSON,
    not UTF-8, nested too deeply)."""
    try:
        body = json.loads(request.get_data(cache=False))
    except RecursionError:
        raise MessageDecodeError("the JSON body is nested too deeply") from None
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MessageDecodeError(f"the body is not JSON: {str(error)[:100]}") from None
    if not isinstance(body, dict):
        raise MessageDecodeError("the JSON body is not an object")
    return body


def _as_text(name: str, value: Any) -> str:
    """Every field is a string on the wire; JSON numbers are accepted for the ids."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MessageDecodeError(f"{name} must be a string, got {type(value).__name__}")
    text = str(value)
    if has_control(text):  # before any strip: a trailing newline is one too
        raise MessageDecodeError(f"{name} contains a control character")
    return text.strip()
