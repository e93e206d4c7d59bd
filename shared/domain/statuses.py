"""Delivery statuses: normalisation and the one "done" rule.

The rule is a table of prefixes. :func:`classify` applies it in Python (the ingestor);
:func:`not_done_sql` renders the same table as SQL (the selector's query), and a test
runs both over the same strings so that they cannot drift apart.
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


#: Prefixes after normalisation (NFKC, trimmed, leading arrows dropped, upper-cased).
DONE_PREFIXES: dict[Outcome, tuple[str, ...]] = {
    Outcome.DELIVERED: (
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
    Outcome.CLOSED: (
        "返品完了",
        "差出人に返送済み",
        "キャンセル",  # Apple: a cancelled order is final
        "CANCELED",
        "CANCELLED",
    ),
}

# Leading whitespace and the arrows Sagawa prefixes; trailing whitespace.
_TRIM = r"^[\s↓⇒→⇓➡]+|\s+$"


def normalize(status: str) -> str:
    """NFKC, trimmed, leading arrows dropped (the stored form)."""
    return re.sub(_TRIM, "", unicodedata.normalize("NFKC", status))


def classify(status: str | None) -> Outcome:
    """What a status means for the purchase; unknown and empty ones keep checking."""
    if status is None:
        return Outcome.KEEP_CHECKING
    key = normalize(status).upper()
    for outcome, prefixes in DONE_PREFIXES.items():
        if key.startswith(prefixes):
            return outcome
    return Outcome.KEEP_CHECKING


def is_done(status: str | None) -> bool:
    return classify(status) is not Outcome.KEEP_CHECKING


def not_done_sql(column: ColumnElement[str]) -> ColumnElement[bool]:
    """SQL true where :func:`is_done` is false (NULL counts as not done)."""
    nfkc = func.normalize(column, literal_column("NFKC"))  # NFKC is a keyword, not a string
    key = func.upper(func.regexp_replace(nfkc, _TRIM, "", "g"))
    return or_(column.is_(None), not_(key.regexp_match(_DONE_PATTERN)))


_DONE_PATTERN = "^(?:{})".format(
    "|".join(re.escape(p) for group in DONE_PREFIXES.values() for p in group)
)
