"""Apple's order-status URL, built only from values that cannot change its shape."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote, urlsplit

from shared.domain.invalid import Invalid

ORDER_STATUS_URL = "https://store.apple.com/go/jp/vieworder/{order}/{email}"
ORDER_NUMBER = re.compile(r"W[0-9]{9,10}")
MAX_EMAIL = 254
# Characters that would end or reshape a path segment (a backslash is a slash to some
# servers); other unusual characters are percent-encoded instead.
_FORBIDDEN = re.compile(r"[/?#\\\s]")


class UnsafeValue(Invalid):
    """The value cannot go into the URL; ``str(error)`` is the reason, ``rule`` its kind."""


def normalize_order_number(raw: str | None) -> str:
    """``W`` + 9 or 10 ASCII digits after NFKC (full-width digits typed by hand become
    ASCII), upper-cased and stripped, or :class:`UnsafeValue`."""
    order = unicodedata.normalize("NFKC", raw or "").strip().upper()
    if not ORDER_NUMBER.fullmatch(order):
        raise UnsafeValue(
            "order_number_shape", f"order number {_show(raw)} is not W followed by 9 or 10 digits"
        )
    return order


def check_email(raw: str | None) -> str:
    """The e-mail, stripped, if it is safe as one path segment; else :class:`UnsafeValue`."""
    email = (raw or "").strip()
    if not email:
        raise UnsafeValue("email_empty", "e-mail is empty")
    if len(email) > MAX_EMAIL:
        raise UnsafeValue("email_too_long", f"e-mail is longer than {MAX_EMAIL} characters")
    plain = email.isascii() and email.isprintable()  # the usual address: no need to look
    if not plain and any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in email):
        raise UnsafeValue("email_control", "e-mail contains control characters")
    found = _FORBIDDEN.search(email)
    if found:
        raise UnsafeValue(
            "email_reshapes_url", f"e-mail contains {found.group()!r}, which would change the URL"
        )
    local, at, domain = email.rpartition("@")
    if not at or not local or "@" in local or "." not in domain or ".." in email:
        raise UnsafeValue("email_shape", "e-mail is not of the form name@domain.tld")
    return email


def order_status_url(order_number: str | None, email: str | None) -> str:
    """The seed's URL with the order upper-cased; ``@`` and ``+`` stay readable."""
    order = normalize_order_number(order_number)
    address = check_email(email)
    return ORDER_STATUS_URL.format(order=order, email=quote(address, safe="@+"))


def _show(raw: str | None) -> str:
    return "(empty)" if not raw else repr(raw[:40])


def order_of(url: str) -> str:
    """The order number segment of an order-status URL ('?' if there is none)."""
    parts = url.split("/")
    return parts[parts.index("vieworder") + 1] if "vieworder" in parts[:-1] else "?"


def url_key(url: str) -> tuple[str, str, str, str]:
    """What two spellings of one URL share: the scraper may re-encode a start URL
    (``%40`` for ``@``, upper-case hosts, a trailing slash), so compare these keys."""
    parts = urlsplit(unicodedata.normalize("NFC", url.strip()))
    path = unquote(parts.path).rstrip("/")
    return parts.scheme.lower(), (parts.hostname or "").lower(), path, unquote(parts.query)
