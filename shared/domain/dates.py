"""Estimated delivery dates from the free text carriers and Apple print (DOMAIN.md).

Every format found in the wild reduces, after normalisation, to date tokens ``[Y/]M/D``;
a range keeps its end (the last token). A token without a year gets the year that puts it
nearest to the anchor (the scrape time, in Asia/Tokyo): an estimate scraped on 28 December
that says ``01/05`` is next January's, one scraped on 3 January that says ``12/30`` is last
December's. Parsers that stamp the current year break every New Year.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from zoneinfo import ZoneInfo

from shared.domain.invalid import Invalid

TOKYO = ZoneInfo("Asia/Tokyo")

_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
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
    text = _ISO_DATE.sub(r"\1/\2/\3", text)
    return _WEEKDAY.sub("", _DASHES.sub("~", text))


def parse_estimate(text: str | None, anchor: dt.datetime) -> dt.date | None:
    """The (last) date in ``text``; None when the text gives no date (``-``, ``午前中``);
    :class:`Invalid` when it has text that is not a date, or a date that does not exist."""
    if text is None:
        return None
    normalized = normalize(text)
    tokens = list(_TOKEN.finditer(normalized))
    if not tokens:
        if _NO_DATE.fullmatch(normalized):
            return None
        raise Invalid("estimated_delivery_date_unparseable", f"no date in {text[:60]!r}")
    last = tokens[-1]
    local = anchor.astimezone(TOKYO).date()
    try:
        month, day = int(last["month"]), int(last["day"])
        if last["year"]:
            return dt.date(int(last["year"]), month, day)
        return _nearest(local, month, day)
    except ValueError:
        raise Invalid(
            "estimated_delivery_date_impossible", f"{text[:60]!r} is not a real date"
        ) from None


def _nearest(anchor: dt.date, month: int, day: int) -> dt.date:
    """``month``/``day`` in the year that puts it within half a year of ``anchor``."""
    candidates = []
    for year in (anchor.year - 1, anchor.year, anchor.year + 1):
        try:
            candidates.append(dt.date(year, month, day))
        except ValueError:  # 29 February outside a leap year
            continue
    if not candidates:
        raise ValueError(f"{month}/{day} exists in no nearby year")
    return min(candidates, key=lambda date: abs(date - anchor))
