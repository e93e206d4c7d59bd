"""Personal data in logs: e-mail addresses are masked, never printed whole; a tracking
number compared with another is shown by its last four digits."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([^\s@/:;,<>\"'()\[\]]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_email(email: str | None) -> str:
    """``user@example.com`` -> ``u***@example.com``."""
    if not email:
        return ""
    local, at, domain = email.strip().rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_emails_in(text: str) -> str:
    """Every e-mail-like run in ``text`` masked (also inside URLs, percent-encoded or not)."""
    if "@" not in text and "%40" not in text:
        return text  # nothing to mask (most log lines): no regex runs
    text = re.sub(r"%40", "@", text, flags=re.I)
    return _EMAIL.sub(lambda m: f"{m.group(1)[:1]}***@{m.group(2)}", text)


def mask_number(number: str | None) -> str:
    """``444413758703`` -> ``********8703`` (``(none)`` for no number)."""
    if not number:
        return "(none)"
    return "*" * max(len(number) - 4, 0) + number[-4:]
