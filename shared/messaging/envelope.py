"""The message envelope and its one JSON codec.

A body is a flat JSON object: the envelope fields ``schema``, ``id`` and ``created_at``
beside the payload fields. Flat, so that an operator can type a valid message by hand
(``{"purchasing_id": 123}``): a body without ``schema`` takes the schema the queue
expects, without ``id`` a digest of the body (the same on every redelivery). Bodies are
parsed as JSON whatever their content type says (the management UI sends none).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SCHEMA_VERSION = 1
MAX_BODY_BYTES = 64 * 1024
ENVELOPE_FIELDS = ("schema", "id", "created_at")


class MessageDecodeError(ValueError):
    """A message body cannot be used; ``str(error)`` is the reason an operator reads."""


@dataclass(frozen=True)
class Envelope:
    schema: str
    payload: Mapping[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", MappingProxyType(dict(self.payload)))

    @property
    def kind(self) -> str:
        return self.schema.partition("/")[0]

    def encode(self) -> bytes:
        """The JSON body (UTF-8)."""
        body = {"schema": self.schema, "id": self.id, "created_at": self.created_at.isoformat()}
        body.update(self.payload)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def new_envelope(kind: str, payload: Mapping[str, Any]) -> Envelope:
    """A fresh envelope of the current schema version for ``kind`` (an exchange name)."""
    clash = set(payload) & set(ENVELOPE_FIELDS)
    if clash:
        raise ValueError(f"payload fields {sorted(clash)} are reserved for the envelope")
    return Envelope(schema=f"{kind}/{SCHEMA_VERSION}", payload=payload)


def decode(body: bytes | str, expected_kind: str, message_id: str | None = None) -> Envelope:
    """Parse a body of ``expected_kind``; raise :class:`MessageDecodeError` with a reason."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_BODY_BYTES:
        raise MessageDecodeError(f"body is {len(raw)} bytes, more than {MAX_BODY_BYTES}")
    if not raw.strip():
        raise MessageDecodeError("body is empty")
    data = _parse_json(raw)
    schema = _schema(data.pop("schema", None), expected_kind)
    envelope_id = _envelope_id(data.pop("id", None), message_id, raw)
    created_at = _created_at(data.pop("created_at", None))
    return Envelope(schema=schema, payload=data, id=envelope_id, created_at=created_at)


def _parse_json(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise MessageDecodeError(
            f"body is not UTF-8 ({error.reason} at byte {error.start})"
        ) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, RecursionError) as error:
        raise MessageDecodeError(f"body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise MessageDecodeError(f"body is JSON {type(data).__name__}, not an object")
    return data


def _reject_constant(name: str) -> None:
    raise MessageDecodeError(f"body is not JSON: {name} is not allowed")


def _schema(value: object, expected_kind: str) -> str:
    expected = f"{expected_kind}/{SCHEMA_VERSION}"
    if value is None:
        return expected
    if value != expected:
        raise MessageDecodeError(f"schema is {value!r}, this queue takes {expected!r}")
    return expected


def _envelope_id(value: object, message_id: str | None, raw: bytes) -> str:
    if value is None:
        return message_id or hashlib.sha256(raw).hexdigest()[:32]
    if not isinstance(value, str) or not 0 < len(value) <= 100:
        raise MessageDecodeError("id must be a string of 1 to 100 characters")
    return value


def _created_at(value: object) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise MessageDecodeError(f"created_at {value!r} is not an ISO 8601 time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
