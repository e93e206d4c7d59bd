"""What the simulated scraper finds at an Apple order-status URL.

The outcome is a pure function of the order number in the URL, so tests steer it by
choosing order numbers. In a job of one URL, the last two digits ``97`` stop the job
(as its user would) and ``98`` fail it as a whole; otherwise, and in every job of many
URLs, the last digit decides that URL's page:

=====  ==============================================================================
digit  page
=====  ==============================================================================
0      Yamato, shipped, valid 12-digit number, estimate ``MM/DD HH:00-HH:00`` (no year)
1      Yamato, shipped, valid number printed ``1234-5678-9012``, estimate ``MM月DD日``
2      Yamato, out for delivery, number in full-width digits, estimate with its year
3      JP Logistics, accepted, valid number, estimate ``YYYY年M月D日（曜）``
4      not shipped yet: Yamato ``伝票番号未登録``, no number
5      Apple still preparing: ``出荷準備中``, no number, no carrier
6      delivered: ``配達完了（宅配ボックス）`` with a valid number
7      empty page: no record, a problematic URL of type ``empty``
8      failed page: no record, a problematic URL of type ``failed``
9      garbage: bad check digit, a status of markup, an unparseable date
=====  ==============================================================================
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

TOKYO = dt.timezone(dt.timedelta(hours=9), "Asia/Tokyo")
YAMATO = "YAMATO TRANSPORT CO.,LTD."
JP_LOGISTICS = "JP LOGISTICS GROUP CO., LTD."
WEEKDAYS = "月火水木金土日"
COLUMNS = ("tracking_number", "delivery_status", "shipping_method", "estimated_delivery_date")


@dataclass(frozen=True)
class PageResult:
    """One start URL's outcome: a record (column values), or a problem type."""

    record: dict[str, str | None] | None
    problem: str | None = None  # "empty" or "failed"


def order_number_of(url: str) -> str:
    """The order number segment of a vieworder URL ('' if there is none)."""
    parts = [unquote(p) for p in urlsplit(url).path.split("/") if p]
    if "vieworder" in parts and parts.index("vieworder") + 1 < len(parts):
        return parts[parts.index("vieworder") + 1]
    return ""


def job_end_status(start_urls: list[str]) -> str:
    """How a job of one start URL whose order number ends 97/98 ends as a whole
    (``stopped`` by its user, ``failed``); otherwise ``finished``, and then its pages
    decide (a job with more than half of its pages failed is ``failed``). In a job of
    many URLs, 97 and 98 are only an empty and a failed page of their own URL."""
    if len(start_urls) != 1:
        return "finished"
    return {"97": "stopped", "98": "failed"}.get(order_number_of(start_urls[0])[-2:], "finished")


def valid_tracking_number(order_number: str) -> str:
    """A 12-digit number whose last digit is the first eleven mod 7 (Yamato's rule)."""
    digits = re.sub(r"\D", "", order_number).rjust(10, "0")[-10:]
    base = "4" + digits
    return base + str(int(base) % 7)


def page_for(url: str, scraped_at: dt.datetime) -> PageResult:
    """The outcome of scraping ``url`` at ``scraped_at`` (an aware datetime)."""
    order = order_number_of(url)
    digit = order[-1] if order and order[-1].isdigit() else "8"
    now = scraped_at.astimezone(TOKYO)
    soon = now + dt.timedelta(days=2)
    number = valid_tracking_number(order)
    builders = {
        "0": lambda: _record(number, "輸送中", YAMATO, f"{soon:%m/%d} 14:00-16:00"),
        "1": lambda: _record(_hyphenated(number), "発送済み", YAMATO, f"{soon:%m月%d日} 16:13"),
        "2": lambda: _record(_full_width(number), "配達中", YAMATO, f"{soon:%Y/%m/%d} 14:00"),
        "3": lambda: _record(number, "引受", JP_LOGISTICS, _kanji_date(soon)),
        "4": lambda: _record(None, "伝票番号未登録", YAMATO, "-"),
        "5": lambda: _record(None, "出荷準備中", None, _range(now)),
        "6": lambda: _record(number, "配達完了（宅配ボックス）", YAMATO, "-"),
        "7": lambda: PageResult(None, "empty"),
        "8": lambda: PageResult(None, "failed"),
        "9": lambda: _record(number[:-1] + "9", "<b>???</b>", "UNKNOWN", "来週のどこか"),
    }
    return builders[digit]()


def _record(number: str | None, status: str, carrier: str | None, estimate: str) -> PageResult:
    return PageResult(dict(zip(COLUMNS, (number, status, carrier, estimate), strict=True)))


def _hyphenated(number: str) -> str:
    return f"{number[:4]}-{number[4:8]}-{number[8:]}"


def _full_width(number: str) -> str:
    return number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def _kanji_date(day: dt.datetime) -> str:
    return f"{day.year}年{day.month}月{day.day}日（{WEEKDAYS[day.weekday()]}）"


def _range(now: dt.datetime) -> str:
    start, end = now + dt.timedelta(days=5), now + dt.timedelta(days=12)
    return f"{start:%Y/%m/%d} - {end:%Y/%m/%d}"
