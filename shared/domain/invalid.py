"""The one error every validator of scraped values raises."""

from __future__ import annotations

import re
import unicodedata


class Invalid(ValueError):
    """A scraped value that must not be written: ``rule`` names the check (it is what
    gets counted), ``str(error)`` explains it to an operator."""

    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule


_MARKUP = re.compile(r"<[^>]*>|&[a-z]+;|&#\d+;")


def plain_text(raw: str | None, field: str, max_length: int) -> str | None:
    """``raw`` NFKC-normalised and trimmed; None if empty; :class:`Invalid` if it holds
    markup, control characters, no letter or digit at all, or is too long to store."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None
    if _MARKUP.search(text):
        raise Invalid(f"{field}_markup", f"{field} holds markup: {raw[:60]!r}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs") for c in text):
        raise Invalid(f"{field}_control", f"{field} holds control characters: {raw[:60]!r}")
    if not any(c.isalnum() for c in text):
        raise Invalid(f"{field}_meaningless", f"{field} has no letter or digit: {raw[:60]!r}")
    if len(text) > max_length:
        raise Invalid(f"{field}_too_long", f"{field} is longer than {max_length} characters")
    return text
