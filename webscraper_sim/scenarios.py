"""What the simulated scraper finds at a start URL: an Apple order-status page, or a
Japan Post search page (see :func:`japan_post_page`).

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

A Japan Post search page (``requestNo1`` .. ``requestNo10``) gives one record per number:
``tracking_number`` (printed ``1234-5678-9012``), ``delivery_status`` and ``status_date``;
the number's second-to-last digit (the last is its check digit) decides its status:
``0`` 通過, ``1`` 持ち出し中, ``2`` お届け先にお届け済み, ``3`` 保管, ``4`` 差出人に返送済み,
``5`` お問い合わせ番号が見つかりません (an unknown number), ``6`` 到着, ``7`` 引受,
``8`` ご不在のため持ち戻り, ``9`` 窓口でお渡し.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

TOKYO = dt.timezone(dt.timedelta(hours=9), "Asia/Tokyo")
YAMATO = "YAMATO TRANSPORT CO.,LTD."
JP_LOGISTICS = "JP LOGISTICS GROUP CO., LTD."
WEEKDAYS = "月火水木金土日"
COLUMNS = ("tracking_number", "delivery_status", "shipping_method", "estimated_delivery_date")
JAPAN_POST_SEARCH = "https://trackings.post.japanpost.jp/services/srv/search/"
UNKNOWN_NUMBER = "お問い合わせ番号が見つかりません"
JAPAN_POST_STATUSES = {
    "0": "通過",
    "1": "持ち出し中",
    "2": "お届け先にお届け済み",
    "3": "保管",
    "4": "差出人に返送済み",
    "5": UNKNOWN_NUMBER,
    "6": "到着",
    "7": "引受",
    "8": "ご不在のため持ち戻り",
    "9": "窓口でお渡し",
}


@dataclass(frozen=True)
class PageResult:
    """One start URL's outcome: its records (column values), or a problem type."""

    records: tuple[dict[str, str | None], ...] = ()
    problem: str | None = None  # "empty" or "failed"

    @property
    def record(self) -> dict[str, str | None] | None:
        """The first record (an Apple page has one), None for a problem page."""
        return self.records[0] if self.records else None


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
    if url.startswith(JAPAN_POST_SEARCH):
        return japan_post_page(url, scraped_at)
    order = order_number_of(url)
    digit = order[-1] if order and order[-1].isdigit() else "8"
    now = scraped_at.astimezone(TOKYO)
    soon = now + dt.timedelta(days=2)
    number = valid_tracking_number(order)
    builders = {
        "0": lambda: apple_page(number, "輸送中", YAMATO, f"{soon:%m/%d} 14:00-16:00"),
        "1": lambda: apple_page(hyphenated(number), "発送済み", YAMATO, f"{soon:%m月%d日} 16:13"),
        "2": lambda: apple_page(_full_width(number), "配達中", YAMATO, f"{soon:%Y/%m/%d} 14:00"),
        "3": lambda: apple_page(number, "引受", JP_LOGISTICS, _kanji_date(soon)),
        "4": lambda: apple_page(None, "伝票番号未登録", YAMATO, "-"),
        "5": lambda: apple_page(None, "出荷準備中", None, _range(now)),
        "6": lambda: apple_page(number, "配達完了（宅配ボックス）", YAMATO, "-"),
        "7": lambda: PageResult((), "empty"),
        "8": lambda: PageResult((), "failed"),
        "9": lambda: apple_page(number[:-1] + "9", "<b>???</b>", "UNKNOWN", "来週のどこか"),
    }
    return builders[digit]()


def japan_post_number(serial: int, outcome: int) -> str:
    """A valid 12-digit number whose search outcome is ``outcome`` (its second-to-last
    digit, see the table above); ``serial`` makes it unique."""
    first = f"5{serial % 10**9:09d}{outcome}"
    return first + str(int(first) % 7)


def japan_post_page(url: str, scraped_at: dt.datetime) -> PageResult:
    """A search page: a record per ``requestNoN`` number, in the page's order; a page
    that asks for no number is empty."""
    fields = dict(parse_qsl(urlsplit(url).query))
    numbers = [fields[f"requestNo{n}"] for n in range(1, 11) if fields.get(f"requestNo{n}")]
    if not numbers:
        return PageResult((), "empty")
    shown = f"{scraped_at.astimezone(TOKYO) - dt.timedelta(hours=3):%Y/%m/%d %H:%M}"
    return PageResult(tuple(_japan_post_record(number, shown) for number in numbers))


def _japan_post_record(number: str, shown: str) -> dict[str, str | None]:
    digit = number[-2] if len(number) >= 2 and number[-2].isdigit() else "5"
    status = JAPAN_POST_STATUSES[digit]
    known = status != UNKNOWN_NUMBER
    return {
        "tracking_number": hyphenated(number) if len(number) == 12 else number,
        "delivery_status": status,
        "status_date": shown if known else None,
    }


def apple_page(number: str | None, status: str, carrier: str | None, estimate: str) -> PageResult:
    return PageResult((dict(zip(COLUMNS, (number, status, carrier, estimate), strict=True)),))


def hyphenated(number: str) -> str:
    return f"{number[:4]}-{number[4:8]}-{number[8:]}"


def _full_width(number: str) -> str:
    return number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def _kanji_date(day: dt.datetime) -> str:
    return f"{day.year}年{day.month}月{day.day}日（{WEEKDAYS[day.weekday()]}）"


def _range(now: dt.datetime) -> str:
    start, end = now + dt.timedelta(days=5), now + dt.timedelta(days=12)
    return f"{start:%Y/%m/%d} - {end:%Y/%m/%d}"
