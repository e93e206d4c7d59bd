"""Estimated delivery dates from the free text carriers and Apple print (docs/domain.md).

Every format found in the wild reduces, after normalisation, to date tokens ``[Y/]M/D``;
a range keeps its end (the last token). A token without a year gets the year that puts it
nearest to the anchor (the scrape time, in Asia/Tokyo): an estimate scraped on 28 December
that says ``01/05`` is next January's, one scraped on 3 January that says ``12/30`` is last
December's. The end of a range is read after its start instead: the first such day on
or after it (``2026/12/28 - 01/05`` ends in 2027, whenever it was scraped). A month and
day that do not exist in the year they land in (``2/29`` near a common year) are refused,
never moved to another year. Parsers that stamp the current year break every New Year.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from zoneinfo import ZoneInfo

from shared.domain.invalid import Invalid

TOKYO = ZoneInfo("Asia/Tokyo")

_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
#: ``2026/01/27~02-03``: a range whose end is an ISO month-day without its year
_ISO_RANGE_END = re.compile(
    r"(\d{4}/\d{1,2}/\d{1,2}\s*[-‐‑‒–—―−~～〜]\s*)(\d{1,2})-(\d{1,2})(?!\d)"
)
_DASHES = re.compile(r"[-‐‑‒–—―−~～〜]")
_WEEKDAY = re.compile(r"\((?:[月火水木金土日]|祝|[A-Za-z]{3})\)")
_TOKEN = re.compile(
    r"(?<![\d/])(?:(?P<year>\d{4})\s*[/.年]\s*)?(?P<month>\d{1,2})\s*[/月]\s*(?P<day>\d{1,2})(?!\d)\s*日?"
)
#: What may remain when a carrier gives a time of day but no date: not an error.
_NO_DATE = re.compile(r"(?:\s|~|\d{1,2}:\d{2}|\d{1,2}時|午前中?|午後|夜間|頃|指定なし|未定|なし)*")


def normalize(text: str) -> str:
    """NFKC, ISO dates as Y/M/D, every dash and wave as ``~``, weekdays dropped."""
    text = unicodedata.normalize("NFKC", text).strip()
    text = _ISO_RANGE_END.sub(r"\1\2/\3", _ISO_DATE.sub(r"\1/\2/\3", text))
    return _WEEKDAY.sub("", _DASHES.sub("~", text))


def parse_estimate(text: str | None, anchor: dt.datetime) -> dt.date | None:
    """The (last) date in ``text``; None when the text gives no date (``-``, ``午前中``);
    :class:`Invalid` when it has text that is not a date, or a date that does not exist."""
    span = estimate_span(text, anchor)
    return span[1] if span else None


def estimate_span(text: str | None, anchor: dt.datetime) -> tuple[dt.date, dt.date] | None:
    """The first and last day of the estimate in ``text`` (the same day twice for a
    single date); None and :class:`Invalid` as :func:`parse_estimate`."""
    if text is None:
        return None
    normalized = normalize(text)
    tokens = list(_TOKEN.finditer(normalized))
    if not tokens:
        if _NO_DATE.fullmatch(normalized):
            return None
        raise Invalid("estimated_delivery_date_unparseable", f"no date in {text[:60]!r}")
    try:
        date = _resolved(tokens[-1], anchor.astimezone(TOKYO).date())
        start = date
        if len(tokens) > 1:
            start = _resolved(tokens[-2], anchor.astimezone(TOKYO).date())
            if not tokens[-1]["year"]:  # a range: its end follows its start
                date = _on_or_after(start, int(tokens[-1]["month"]), int(tokens[-1]["day"]))
        return min(start, date), date
    except ValueError:
        raise Invalid(
            "estimated_delivery_date_impossible", f"{text[:60]!r} is not a real date"
        ) from None


def _resolved(token: re.Match[str], anchor: dt.date) -> dt.date:
    month, day = int(token["month"]), int(token["day"])
    if token["year"]:
        return dt.date(int(token["year"]), month, day)
    return _nearest(anchor, month, day)


def _nearest(anchor: dt.date, month: int, day: int) -> dt.date:
    """``month``/``day`` in the year that puts it within half a year of ``anchor``
    (ValueError if that year has no such day)."""
    year = min(
        (anchor.year - 1, anchor.year, anchor.year + 1),
        key=lambda y: abs(_clamped(y, month, day) - anchor),
    )
    return dt.date(year, month, day)


def _on_or_after(start: dt.date, month: int, day: int) -> dt.date:
    """The first ``month``/``day`` on or after ``start`` (ValueError if that year has none)."""
    year = start.year if _clamped(start.year, month, day) >= start else start.year + 1
    return dt.date(year, month, day)


def _clamped(year: int, month: int, day: int) -> dt.date:
    """The date, or the month's last day where ``day`` is past it (to choose a year)."""
    if not 1 <= day <= 31:
        raise ValueError(f"no day {day}")
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))
