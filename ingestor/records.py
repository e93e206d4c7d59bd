"""One scraped record → the values that may be written (pure), for each task.

The tracking-number task's sitemap (1421177) gives one record per Apple order page; the
refresh task's Japan Post sitemap gives one record per number on a search page of up to
ten, matched to its purchase by the normalised number within its start URL, and only
its status is ever written (never a tracking number). The Yamato refresh re-reads the
Apple order page and writes its status and estimate only, and only where the page shows
the purchase's own number.

Every column is untrusted text (docs/contract.md): each goes through its validator in
``shared/domain``; a value that fails is not written, and its rule and reason are kept
in ``rejected`` (stored on the job, counted at the batch's end).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.domain import dates, statuses, tracking_numbers
from shared.domain.invalid import Invalid, plain_text
from shared.domain.masking import mask_number
from shared.domain.urls import url_key
from shared.tasks import (
    JAPAN_POST_TRACKING_10,
    OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO,
    YAMATO_STATUS_REFRESH,
)

START_URL = "web-scraper-start-url"
ORDER = "web-scraper-order"
MAX_TEXT = 200  # the purchasing columns are String(200)
T = TypeVar("T")


@dataclass(frozen=True)
class Scraped:
    """The valid values of one record, and the reasons for the ones left out."""

    tracking_number: str | None = None
    delivery_status: str | None = None
    shipping_method: str | None = None
    #: Apple's delivery estimate, its first and last day
    estimate: tuple[dt.date, dt.date] | None = None
    rejected: dict[str, str] = field(default_factory=dict)
    #: the page was asked for a tracking number (False: for the status alone)
    seeks_number: bool = True

    @property
    def estimated_delivery_date(self) -> dt.date | None:
        """The estimate's last day: the purchase's ``estimated_delivery_date``."""
        return self.estimate[1] if self.estimate else None

    @property
    def delivery_status_code(self) -> statuses.StatusCode | None:
        return statuses.code_of(self.delivery_status)

    @property
    def outcome(self) -> statuses.Outcome:
        return statuses.classify(self.delivery_status)

    @property
    def needs_recheck(self) -> bool:
        """No number yet and the parcel's story is not over: look again later."""
        return (
            self.seeks_number
            and self.tracking_number is None
            and self.outcome is statuses.Outcome.KEEP_CHECKING
        )


def read_record(record: dict[str, Any], fallback_anchor: dt.datetime) -> Scraped:
    """Validate every column of ``record``; the scrape time (from ``web-scraper-order``)
    anchors the year of dates that have none."""
    rejected: dict[str, str] = {}

    def check(convert: Callable[[], T]) -> T | None:
        try:
            return convert()
        except Invalid as error:
            rejected[error.rule] = str(error)
            return None

    method = check(lambda: _plain(record, "shipping_method"))
    status = check(lambda: _status(_plain(record, "delivery_status")))
    number = check(lambda: tracking_numbers.validate(_text(record, "tracking_number"), method))
    anchor = scraped_at(record) or fallback_anchor
    estimate = check(lambda: dates.estimate_span(_text(record, "estimated_delivery_date"), anchor))
    return Scraped(number, status, method, estimate, rejected)


def read_status_record(record: dict[str, Any], fallback_anchor: dt.datetime) -> Scraped:
    """A Japan Post record: its status alone (an unknown number's label is a status
    too). ``status_date`` is the page's own time of that status, not stored."""
    rejected: dict[str, str] = {}
    try:
        status = _status(_plain(record, "delivery_status"))
    except Invalid as error:
        status, rejected[error.rule] = None, str(error)
    if status is None and not rejected:
        rejected["delivery_status_missing"] = "the page gave no status for the number"
    return Scraped(delivery_status=status, rejected=rejected, seeks_number=False)


def record_of_number(
    records: Iterable[dict[str, Any]], target_url: str, number: str | None
) -> dict[str, Any] | None:
    """The record of ``number`` (normalised) among those scraped from ``target_url``."""
    if not number:
        return None
    wanted = url_key(target_url)
    for record in records:
        if url_key(str(record.get(START_URL) or "")) != wanted:
            continue
        given = record.get("tracking_number")
        if isinstance(given, str | int) and tracking_numbers.normalize(str(given)) == number:
            return record
    return None


def read_refresh_record(
    record: dict[str, Any], fallback_anchor: dt.datetime, number: str | None
) -> Scraped:
    """An Apple order page re-read for the status of the parcel numbered ``number``
    (the Yamato refresh): its status and estimate, never its number. A page that shows
    another number, or none, writes nothing: it may be another parcel's story."""
    scraped = read_record(record, fallback_anchor)
    shown = scraped.tracking_number
    if shown is None or shown != number:
        rule = "tracking_number_differs" if shown else "tracking_number_missing"
        reason = (
            f"the page shows {mask_number(shown)}, the purchase has {mask_number(number)}: "
            "nothing written"
        )
        return Scraped(rejected={**scraped.rejected, rule: reason}, seeks_number=False)
    return Scraped(
        delivery_status=scraped.delivery_status,
        estimate=scraped.estimate,
        rejected=scraped.rejected,
        seeks_number=False,
    )


@dataclass(frozen=True)
class Reader:
    """How a task's job finds its record (records, its URL, its purchase's number)
    and reads it (the record, the year's anchor, the purchase's number)."""

    find: Callable[[list[dict[str, Any]], str, str | None], dict[str, Any] | None]
    read: Callable[[dict[str, Any], dt.datetime, str | None], Scraped]


READERS = {
    OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO.name: Reader(
        lambda records, url, _number: record_for(records, url),
        lambda record, anchor, _number: read_record(record, anchor),
    ),
    JAPAN_POST_TRACKING_10.name: Reader(
        record_of_number, lambda record, anchor, _number: read_status_record(record, anchor)
    ),
    YAMATO_STATUS_REFRESH.name: Reader(
        lambda records, url, _number: record_for(records, url), read_refresh_record
    ),
}


def _status(text: str | None) -> str | None:
    return statuses.normalize(text) if text else None


def _plain(record: dict[str, Any], column: str) -> str | None:
    return plain_text(_text(record, column), column, MAX_TEXT)


def _text(record: dict[str, Any], column: str) -> str | None:
    """A column as text; a number is accepted as its digits, anything else is Invalid."""
    value = record.get(column)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise Invalid(f"{column}_type", f"{column} is a {type(value).__name__}, not text")


def scraped_at(record: dict[str, Any]) -> dt.datetime | None:
    """The unix time at the front of ``web-scraper-order`` (``"<unix-ts>-<n>"``)."""
    stamp = str(record.get(ORDER) or "").partition("-")[0]
    if not stamp.isdigit() or not 1_000_000_000 <= int(stamp) < 10_000_000_000:
        return None
    return dt.datetime.fromtimestamp(int(stamp), dt.UTC)


def record_for(records: Iterable[dict[str, Any]], target_url: str) -> dict[str, Any] | None:
    """The record scraped from ``target_url`` (URLs compared by :func:`url_key`); of several,
    the one with a tracking number, else the first."""
    wanted = url_key(target_url)
    matches = [r for r in records if url_key(str(r.get(START_URL) or "")) == wanted]
    with_number = [r for r in matches if r.get("tracking_number")]
    return (with_number or matches or [None])[0]
