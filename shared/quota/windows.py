"""The ledger's window arithmetic, as pure functions over sorted reservation times, and
its one rule of which calls a window holds."""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Any


def in_window(at: Any, now: Any, span: Any) -> Any:
    """The calls of the window of length ``span`` that ends at ``now``: (now - span, now].
    ``at`` is the call time column; ``now`` and ``span`` values or SQL expressions. The
    ledger's rule, and what every figure of "calls in the current window" counts."""
    return (at > now - span) & (at <= now)


def in_window_or_ahead(at: Any, now: Any, span: Any) -> Any:
    """The calls of the window that ends at ``now`` (see :func:`in_window`) and those
    planned after it: what a share of the creations counts."""
    return at > now - span


def around(at: Any, slot: Any, span: Any) -> Any:
    """The calls within ``span`` either side of ``slot``: every window holding ``slot``
    holds only these, so fewer than the cap of them means each such window has room
    (the common case, counted by the index on ``at`` instead of testing each window)."""
    return (at > slot - span) & (at < slot + span)


def first_valid(
    limits: list[tuple[list[dt.datetime], int]], earliest: dt.datetime, span: dt.timedelta
) -> dt.datetime:
    """The earliest t >= ``earliest`` such that, for each (sorted times, cap) in
    ``limits``, every window of length ``span`` holding t holds fewer than ``cap`` of the
    times. A slot can only open when a reserved call leaves a window, so the candidates
    are ``earliest`` and each time + span."""
    candidates = {earliest} | {
        t + span for times, _ in limits for t in times if t + span > earliest
    }
    for slot in sorted(candidates):
        if all(fits(times, slot, span, cap) for times, cap in limits):
            return slot
    return max(earliest, *(times[-1] + span for times, _ in limits if times))


def fits(times: list[dt.datetime], slot: dt.datetime, span: dt.timedelta, cap: int) -> bool:
    """Every window (e - span, e] holding ``slot`` keeps fewer than ``cap`` calls; such
    windows end at ``slot`` or at a reserved time less than ``span`` after it."""
    later = times[bisect.bisect_right(times, slot) : bisect.bisect_left(times, slot + span)]
    for end in [slot, *later]:
        inside = bisect.bisect_right(times, end) - bisect.bisect_right(times, end - span)
        if inside + 1 > cap:
            return False
    return True
