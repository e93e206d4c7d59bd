"""Tracking numbers: normalisation, the carrier and the check digits (docs/domain.md).

A 12-digit number alone does not tell the carrier (Yamato, Sagawa and Japan Post share
length and rule), so the carrier comes from Apple's ``shipping_method`` and decides which
formats are accepted; an unknown carrier accepts any format whose check digit holds.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    func,
    literal_column,
    not_,
    or_,
)

from shared.domain.invalid import Invalid


class Carrier(StrEnum):
    YAMATO = "yamato"
    JAPAN_POST = "japan_post"  # JP Logistics parcels are tracked on Japan Post's site
    SAGAWA = "sagawa"
    UNKNOWN = "unknown"


class Format(StrEnum):
    DOMESTIC_12 = "12-digit"  # Yamato, Sagawa, Japan Post ゆうパック: 11 digits mod 7
    REGISTERED_11 = "11-digit"  # Japan Post registered mail: 10 digits mod 7
    S10 = "S10"  # UPU international: AA 8 digits, check digit, AA


_CARRIER_WORDS = (
    (Carrier.YAMATO, ("YAMATO", "ヤマト", "クロネコ")),
    (Carrier.JAPAN_POST, ("JP LOGISTICS", "JAPAN POST", "日本郵便", "ゆうパック", "JPロジ")),
    (Carrier.SAGAWA, ("SAGAWA", "佐川")),
)
FORMATS_OF = {
    Carrier.YAMATO: (Format.DOMESTIC_12,),
    Carrier.SAGAWA: (Format.DOMESTIC_12,),
    Carrier.JAPAN_POST: (Format.DOMESTIC_12, Format.REGISTERED_11, Format.S10),
    Carrier.UNKNOWN: (Format.DOMESTIC_12, Format.REGISTERED_11, Format.S10),
}
_SHAPES = {
    Format.DOMESTIC_12: re.compile(r"[0-9]{12}"),
    Format.REGISTERED_11: re.compile(r"[0-9]{11}"),
    Format.S10: re.compile(r"[A-Z]{2}[0-9]{9}[A-Z]{2}"),
}
S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
# Spaces and every dash-like character people and pages put between digit groups.
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―−ー－]+")


def carrier_of(shipping_method: str | None) -> Carrier:
    """The carrier Apple names in ``shipping_method`` (English or Japanese)."""
    text = unicodedata.normalize("NFKC", shipping_method or "").upper()
    for carrier, words in _CARRIER_WORDS:
        if any(word in text for word in words):
            return carrier
    return Carrier.UNKNOWN


def carrier_sql(column: ColumnElement[str], carrier: Carrier) -> ColumnElement[bool]:
    """SQL true where :func:`carrier_of` of ``column`` is ``carrier`` (the same words, in
    the same order: an earlier carrier's word wins)."""
    text = func.upper(func.normalize(column, literal_column("NFKC")))
    earlier, words = [], ()
    for named, named_words in _CARRIER_WORDS:
        if named is carrier:
            words = named_words
            break
        earlier += named_words
    return and_(
        or_(*(text.contains(word, autoescape=True) for word in words)),
        *(not_(text.contains(word, autoescape=True)) for word in earlier),
    )


def domestic_12_sql(column: ColumnElement[str]) -> ColumnElement[bool]:
    """SQL true where ``column`` is a valid 12-digit number (:func:`normalize`d, the
    first eleven digits mod 7 are the last)."""
    number = func.regexp_replace(
        func.normalize(column, literal_column("NFKC")), _SEPARATORS.pattern, "", "g"
    )
    check = func.mod(cast(func.left(number, 11), BigInteger), 7) == cast(
        func.right(number, 1), Integer
    )
    # CASE: the casts run only on the rows the pattern let through
    return case((number.regexp_match("^[0-9]{12}$"), check), else_=False)


def normalize(raw: str) -> str:
    """NFKC (full-width digits become ASCII), separators dropped, upper-cased."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper()


def check_digit_ok(number: str, form: Format) -> bool:
    """Whether the normalised ``number`` of shape ``form`` carries a valid check digit."""
    if form is Format.S10:
        return _s10_check(number[2:10]) == int(number[10])
    return int(number[:-1]) % 7 == int(number[-1])


def validate(raw: str | None, shipping_method: str | None) -> str | None:
    """The normalised number, None if there is none, or :class:`Invalid`."""
    if raw is None or not raw.strip():
        return None
    number = normalize(raw)
    carrier = carrier_of(shipping_method)
    allowed = FORMATS_OF[carrier]
    form = next((f for f in allowed if _SHAPES[f].fullmatch(number)), None)
    if form is None:
        shapes = ", ".join(allowed)
        raise Invalid(
            "tracking_number_format", f"{raw[:40]!r} is not a {carrier} number ({shapes})"
        )
    if not check_digit_ok(number, form):
        raise Invalid("tracking_number_check_digit", f"{raw[:40]!r}: wrong check digit ({form})")
    return number


def _s10_check(serial: str) -> int:
    remainder = sum(int(d) * w for d, w in zip(serial, S10_WEIGHTS, strict=True)) % 11
    return {0: 5, 1: 0}.get(remainder, 11 - remainder)
