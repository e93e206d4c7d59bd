"""Control characters in text from outside (webhooks, messages typed by hand, pages)."""

from __future__ import annotations

import re

#: C0 and C1 controls, DEL, and the Unicode line and paragraph separators
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(text: str) -> bool:
    return CONTROL.search(text) is not None


def escape_controls(text: str) -> str:
    """``text`` with each control character written as its escape (``\\n``, ``\\x1b``)."""
    return CONTROL.sub(lambda found: repr(found.group())[1:-1], text)
