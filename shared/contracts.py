"""The payloads carried on each exchange, validated on the way in.

``parse`` raises :class:`MessageDecodeError` with a reason an operator can act on;
unknown extra fields are ignored so that producers can add fields first.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from shared.domain.text import has_control
from shared.messaging.envelope import MessageDecodeError
from shared.messaging.topology import (
    CANDIDATE_FOUND,
    JOB_COMPLETED,
    JOB_PUBLISHED,
    TRACKING_UPDATED,
)
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO, TRACKING_TASK_CONFIGS

#: ids (ours, the service's) are positive integers below this: far above any real one,
#: and exact in every JSON reader (below 2**53)
MAX_ID = 10**15
#: the statuses a scraping job can have (docs/webscraper-api.md); another is kept, not refused
SCRAPER_STATUSES = frozenset(
    ("waiting-to-be-scheduled", "scheduled", "started", "shelved", "finished", "failed", "stopped")
)


class _Fields:
    """Typed reads from a payload; every error names the field."""

    def __init__(self, payload: Mapping[str, Any]):
        self._payload = payload

    def present(self, name: str) -> bool:
        return self._payload.get(name) not in (None, "")

    def text(self, name: str, max_length: int = 200, required: bool = True) -> str | None:
        value = self._payload.get(name)
        if value in (None, ""):
            if required:
                raise MessageDecodeError(f"{name} is missing")
            return None
        if not isinstance(value, str):
            raise MessageDecodeError(f"{name} must be a string, got {type(value).__name__}")
        if len(value) > max_length:
            raise MessageDecodeError(f"{name} is longer than {max_length} characters")
        if has_control(value):
            raise MessageDecodeError(f"{name} contains a control character")
        return value

    def integer(self, name: str, required: bool = True) -> int | None:
        value = self._payload.get(name)
        if value in (None, ""):
            if required:
                raise MessageDecodeError(f"{name} is missing")
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_ID:
            shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}..."
            raise MessageDecodeError(
                f"{name} must be a positive integer below {MAX_ID:.0e}, got {shown}"
            )
        return value

    def word(self, name: str) -> str:
        """A lower-case word such as a job status (``finished``, ``waiting-to-be-scheduled``)."""
        value = self.text(name, 50)
        if not re.fullmatch(r"[a-z][a-z_-]*", value or ""):
            raise MessageDecodeError(f"{name} must be a lower-case word, got {value!r}")
        return value  # type: ignore[return-value]

    def custom_id(self, task: str, required: bool = True) -> str | None:
        """A custom id of exactly ``task``'s shape (the registry's)."""
        value = self.text("custom_id", 100, required=required)
        if value is not None and not TRACKING_TASK_CONFIGS[task].owns(value):
            raise MessageDecodeError(
                f"custom_id {value!r} is not a custom id of task {task} "
                f"({TRACKING_TASK_CONFIGS[task].custom_id_prefix}<8 hex digits>-<4 digits>)"
            )
        return value

    def task(self) -> str:
        name = self.text("task", required=False) or OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO.name
        if name not in TRACKING_TASK_CONFIGS:
            raise MessageDecodeError(f"task {name!r} is not a known task")
        return name

    def uuid_text(self, name: str, required: bool = True) -> str | None:
        value = self.text(name, max_length=36, required=required)
        if value is None:
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise MessageDecodeError(f"{name} is not a UUID: {value!r}") from None


def _payload(message: object, wire: Mapping[str, str]) -> dict[str, Any]:
    """The message's fields that are set, under their names on the wire (``wire`` maps
    the few the code spells otherwise: the contract's names stay)."""
    fields = asdict(message)  # type: ignore[call-overload]
    return {wire.get(key, key): value for key, value in fields.items() if value is not None}


@dataclass(frozen=True)
class CandidateFound:
    """A purchase to look up: by ``purchasing_id``, or by ``order_number`` and ``email``
    (a manual request). The selector also sends its batch's ``custom_id``."""

    KIND = CANDIDATE_FOUND
    WIRE: ClassVar[Mapping[str, str]] = {}

    task: str
    purchasing_id: int | None = None
    order_number: str | None = None
    email: str | None = None
    custom_id: str | None = None
    batch_uuid: str | None = None

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> CandidateFound:
        fields = _Fields(payload)
        by_order = fields.present("order_number") or fields.present("email")
        if fields.present("purchasing_id") and by_order:
            raise MessageDecodeError(
                "give either purchasing_id or order_number with email, not both"
            )
        if not fields.present("purchasing_id") and not by_order:
            raise MessageDecodeError("purchasing_id is missing (or order_number with email)")
        task = fields.task()
        return cls(
            task=task,
            purchasing_id=fields.integer("purchasing_id", required=not by_order),
            order_number=fields.text("order_number", 64, required=by_order),
            email=fields.text("email", 254, required=by_order),
            custom_id=fields.custom_id(task, required=False),
            batch_uuid=fields.uuid_text("batch_uuid", required=False),
        )

    def to_payload(self) -> dict[str, Any]:
        return _payload(self, self.WIRE)


@dataclass(frozen=True)
class JobPublished:
    """A scraping job was created for ``custom_id``."""

    KIND = JOB_PUBLISHED
    #: the scraper's job id is ``job_id`` in the message, as in the tracking_job column
    WIRE = {"scraping_job_id": "job_id"}

    task: str
    custom_id: str
    scraping_job_id: int
    batch_uuid: str
    target_url: str
    purchasing_id: int | None = None

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> JobPublished:
        fields = _Fields(payload)
        return cls(
            task=fields.task(),
            custom_id=fields.text("custom_id", 100),  # type: ignore[arg-type]
            scraping_job_id=fields.integer(cls.WIRE["scraping_job_id"]),  # type: ignore[arg-type]
            batch_uuid=fields.uuid_text("batch_uuid"),  # type: ignore[arg-type]
            target_url=fields.text("target_url", 2000),  # type: ignore[arg-type]
            purchasing_id=fields.integer("purchasing_id", required=False),
        )

    def to_payload(self) -> dict[str, Any]:
        return _payload(self, self.WIRE)


@dataclass(frozen=True)
class JobCompleted:
    """The scraper says job ``scraping_job_id`` ended (the webhook's fields, typed)."""

    KIND = JOB_COMPLETED
    #: the webhook's spelling, kept in the message
    WIRE = {"scraping_job_id": "scrapingjob_id"}

    task: str
    scraping_job_id: int
    status: str
    custom_id: str
    sitemap_id: int | None = None
    sitemap_name: str | None = None
    #: a hint of the reconciler (no webhook came): a job still running is left for its
    #: next look instead of being waited for
    reconcile: bool = False

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> JobCompleted:
        fields = _Fields(payload)
        task = fields.task()
        return cls(
            task=task,
            scraping_job_id=fields.integer(cls.WIRE["scraping_job_id"]),  # type: ignore[arg-type]
            status=fields.word("status"),
            custom_id=fields.custom_id(task),  # type: ignore[arg-type]
            sitemap_id=fields.integer("sitemap_id", required=False),
            sitemap_name=fields.text("sitemap_name", 200, required=False),
            reconcile=payload.get("reconcile") is True,
        )

    @property
    def status_known(self) -> bool:
        return self.status in SCRAPER_STATUSES

    def to_payload(self) -> dict[str, Any]:
        payload = _payload(self, self.WIRE)
        if not self.reconcile:
            del payload["reconcile"]  # a webhook's message, as it always was
        return payload


#: the purchase's columns a tracking.updated event reports, old and new
TOLD_FIELDS = (
    "tracking_number",
    "latest_delivery_status",
    "delivery_status_code",
    "estimated_delivery_date",
)


@dataclass(frozen=True)
class TrackingUpdated:
    """A purchase's tracking changed (docs/events.md): ``changes`` maps each reported
    column that changed to its ``{"old": ..., "new": ...}`` (dates as ISO text). Never an
    e-mail address or a token."""

    KIND = TRACKING_UPDATED
    WIRE = {"scraping_job_id": "scrapingjob_id"}

    purchasing_id: int
    order_number: str | None
    changes: Mapping[str, Mapping[str, Any]]
    task: str
    scraping_job_id: int | None = None

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> TrackingUpdated:
        fields = _Fields(payload)
        changes = payload.get("changes")
        if not isinstance(changes, Mapping) or not changes:
            raise MessageDecodeError("changes must be an object naming at least one field")
        for name, change in changes.items():
            if name not in TOLD_FIELDS:
                raise MessageDecodeError(f"changes names {name!r}, not one of {TOLD_FIELDS}")
            if not isinstance(change, Mapping) or set(change) != {"old", "new"}:
                raise MessageDecodeError(f"changes.{name} must be {{'old': ..., 'new': ...}}")
        return cls(
            purchasing_id=fields.integer("purchasing_id"),  # type: ignore[arg-type]
            order_number=fields.text("order_number", 64, required=False),
            changes=changes,
            task=fields.task(),
            scraping_job_id=fields.integer(cls.WIRE["scraping_job_id"], required=False),
        )

    def to_payload(self) -> dict[str, Any]:
        return {**_payload(self, self.WIRE), "changes": dict(self.changes)}
