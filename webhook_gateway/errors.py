"""The one error table of the HTTP edge: exception → status and ``{"error", "message"}``."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from shared.messaging.envelope import MessageDecodeError
from shared.messaging.publishing import PublishError
from shared.metrics import WEBHOOKS

log = logging.getLogger("trackfill.gateway")


class TokenMissing(Exception):
    """No ``token`` query parameter."""


class TokenWrong(Exception):
    """A ``token`` that is not the webhook token."""


class UnsupportedType(Exception):
    """A body that is neither a form nor JSON (multipart, text, ...)."""


#: exception class → (HTTP status, error code); the first matching class wins.
ERRORS: list[tuple[type[BaseException], int, str]] = [
    (TokenMissing, 401, "token_missing"),
    (TokenWrong, 403, "token_wrong"),
    (MessageDecodeError, 400, "bad_request"),
    (UnsupportedType, 415, "unsupported_media_type"),
    (PublishError, 503, "broker_unavailable"),
]


def register(app: Flask) -> None:
    """Answer every error, expected or not, from the table, as JSON."""

    @app.errorhandler(Exception)
    def answer(error: Exception):
        status, code, message = describe(error)
        if request.path.startswith("/api/"):
            WEBHOOKS.labels(code).inc()
        if status >= 500:
            # the path only: the query string carries the token
            log.warning("%s %s -> %d %s: %s", request.method, request.path, status, code, message)
        return jsonify(error=code, message=message), status


def describe(error: BaseException) -> tuple[int, str, str]:
    for kind, status, code in ERRORS:
        if isinstance(error, kind):
            return status, code, str(error) or code
    if isinstance(error, HTTPException):
        code = (error.name or "http_error").lower().replace(" ", "_")
        return error.code or 500, code, error.description or code
    log.error("unexpected error on %s", request.path, exc_info=error)
    return 500, "internal", "internal error"
