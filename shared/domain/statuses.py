"""Delivery statuses: normalisation and the one "done" rule.

One table of prefixes maps every status we know to its normalised code
(:func:`code_of`); the done rule is a view of it. :func:`classify` applies the rule in
Python (the ingestor); :func:`not_done_sql` renders it as SQL (the selector's query), and
a test runs both over the same strings so that they cannot drift apart.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from sqlalchemy import ColumnElement, func, literal_column, not_, or_


class Outcome(StrEnum):
    DELIVERED = "delivered"  # done
    CLOSED = "closed"  # done without delivery: returned or cancelled; worth a flag
    KEEP_CHECKING = "keep_checking"


class StatusCode(StrEnum):
    """``purchasing.delivery_status_code`` (docs/domain.md, Normalised codes)."""

    PENDING = "pending"
    INFO_RECEIVED = "info_received"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_FAILED = "delivery_failed"
    READY_FOR_PICKUP = "ready_for_pickup"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    EXCEPTION = "exception"
    UNKNOWN = "unknown"


#: The one table of the statuses we know (docs/domain.md: Apple, Yamato, Japan Post, Sagawa),
#: as prefixes after normalisation (NFKC, trimmed, leading arrows dropped, upper-cased).
#: The done rule is a view of it (:data:`DONE_CODES`); a status no prefix starts is
#: ``unknown``, and keeps being checked.
CODES: dict[StatusCode, tuple[str, ...]] = {
    StatusCode.PENDING: (
        "伝票番号未登録",  # Yamato: normal for hours after Apple ships
        "お問い合わせ番号が見つかりません",  # Japan Post: not registered yet
        "処理中",  # Apple's own page, before a carrier has the parcel
        "出荷準備中",
        "配送準備中",
        "PLACED",  # Apple's order data
        "PROCESSING",
        "PREPARED_FOR_SHIPMENT",
    ),
    StatusCode.INFO_RECEIVED: ("荷物受付", "引受"),
    StatusCode.IN_TRANSIT: (
        "輸送中",
        "作業店通過",
        "到着",
        "通過",
        "発送済み",
        "出荷完了",  # Apple: shipped
        "SHIPPED",
    ),
    StatusCode.OUT_FOR_DELIVERY: ("配達中", "持ち出し中"),
    StatusCode.DELIVERY_FAILED: ("持戻", "ご不在のため持ち戻り"),
    StatusCode.READY_FOR_PICKUP: ("保管", "窓口保管"),
    StatusCode.DELIVERED: (
        "配達完了",  # Yamato (also 配達完了（宅配ボックス）) and Sagawa; the seed's string
        "投函完了",
        "お客様引渡完了",
        "お届け先にお届け済み",  # Japan Post; the seed's string
        "窓口でお渡し",
        "配達済み",
        "配達終了",
        "引渡完了",
        "配送済み",  # Apple's own page
        "DELIVERED",  # Apple's order data
    ),
    StatusCode.RETURNED: ("返品完了", "差出人に返送済み"),
    StatusCode.CANCELLED: ("キャンセル", "CANCELED", "CANCELLED"),  # Apple: final
    StatusCode.EXCEPTION: ("調査中",),
}

#: The done rule, as a view of :data:`CODES`: what each final code means.
DONE_CODES: dict[StatusCode, Outcome] = {
    StatusCode.DELIVERED: Outcome.DELIVERED,
    StatusCode.RETURNED: Outcome.CLOSED,
    StatusCode.CANCELLED: Outcome.CLOSED,
}

#: the done rule's prefixes by outcome (the selector's SQL renders these)
DONE_PREFIXES: dict[Outcome, tuple[str, ...]] = {
    outcome: tuple(p for code, o in DONE_CODES.items() if o is outcome for p in CODES[code])
    for outcome in (Outcome.DELIVERED, Outcome.CLOSED)
}

# Leading whitespace and the arrows Sagawa prefixes; trailing whitespace.
_TRIM = r"^[\s↓⇒→⇓➡]+|\s+$"


def normalize(status: str) -> str:
    """NFKC, trimmed, leading arrows dropped (the stored form)."""
    return re.sub(_TRIM, "", unicodedata.normalize("NFKC", status))


def code_of(status: str | None) -> StatusCode | None:
    """The normalised code of a status; None for no status (None or blank)."""
    key = normalize(status).upper() if status is not None else ""
    if not key:
        return None
    for prefix, code in _LONGEST_FIRST:
        if key.startswith(prefix):
            return code
    return StatusCode.UNKNOWN


def classify(status: str | None) -> Outcome:
    """What a status means for the purchase; unknown and empty ones keep checking."""
    code = code_of(status)
    return DONE_CODES.get(code, Outcome.KEEP_CHECKING) if code else Outcome.KEEP_CHECKING


def is_done(status: str | None) -> bool:
    return classify(status) is not Outcome.KEEP_CHECKING


def not_done_sql(column: ColumnElement[str]) -> ColumnElement[bool]:
    """SQL true where :func:`is_done` is false (NULL counts as not done)."""
    nfkc = func.normalize(column, literal_column("NFKC"))  # NFKC is a keyword, not a string
    key = func.upper(func.regexp_replace(nfkc, _TRIM, "", "g"))
    return or_(column.is_(None), not_(key.regexp_match(_DONE_PATTERN)))


#: (prefix, code) of the whole table, longest prefix first: where one prefix starts
#: another, the longer one decides
_LONGEST_FIRST = sorted(
    ((prefix, code) for code, prefixes in CODES.items() for prefix in prefixes),
    key=lambda pair: -len(pair[0]),
)

_DONE_PATTERN = "^(?:{})".format(
    "|".join(re.escape(p) for group in DONE_PREFIXES.values() for p in group)
)
