"""Japan Post's tracking search page, which takes up to ten numbers (docs/refresh.md,
docs/domain.md): the URL built from a group of numbers, and the numbers read back
from a URL (to match each record of the page to its purchase, within its URL)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

from shared.domain.tracking_numbers import normalize
from shared.domain.urls import UnsafeValue

SEARCH_URL = "https://trackings.post.japanpost.jp/services/srv/search/"
#: the most numbers one search page takes
MAX_NUMBERS = 10
_NUMBER = re.compile(r"[0-9]{11,13}")
_FIELD = re.compile(r"requestNo([1-9]|10)")


def search_url(numbers: Sequence[str]) -> str:
    """The search page for 1 to 10 tracking numbers, in their order, without hyphens:
    ``...?requestNo1=N1&...&requestNoK=NK&search=追跡スタート`` (percent-encoded)."""
    if not 1 <= len(numbers) <= MAX_NUMBERS:
        raise UnsafeValue(
            "japan_post_numbers", f"a search takes 1 to {MAX_NUMBERS} numbers, not {len(numbers)}"
        )
    digits = [normalize(number) for number in numbers]
    for given, number in zip(numbers, digits, strict=True):
        if not _NUMBER.fullmatch(number):
            raise UnsafeValue("japan_post_number", f"{given!r} is not a tracking number")
    if len(set(digits)) != len(digits):
        raise UnsafeValue("japan_post_numbers", "a number is given twice")
    fields = [(f"requestNo{n}", number) for n, number in enumerate(digits, start=1)]
    return f"{SEARCH_URL}?{urlencode([*fields, ('search', '追跡スタート')])}"


def numbers_in(url: str) -> list[str]:
    """The tracking numbers a search URL asks for, in its order ([] for another URL)."""
    parts = urlsplit(url)
    if f"{parts.scheme}://{parts.netloc}{parts.path}" != SEARCH_URL:
        return []
    found = [(int(m.group(1)), v) for k, v in parse_qsl(parts.query) if (m := _FIELD.fullmatch(k))]
    return [normalize(number) for _, number in sorted(found) if number]
