"""The ledger's slot search, as a pure function over reservation times."""

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.quota.windows import first_valid, fits

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(seconds=10)


def at(*seconds: float) -> list[dt.datetime]:
    return [T0 + dt.timedelta(seconds=s) for s in seconds]


def test_a_free_window_gives_the_earliest_time():
    assert first_valid([([], 3)], T0, SPAN) == T0


def test_a_full_window_gives_the_moment_the_oldest_call_leaves_it():
    times = at(0, 1, 2)
    assert first_valid([(times, 3)], T0 + dt.timedelta(seconds=3), SPAN) == at(10)[0]


def test_a_slot_must_not_overfill_a_later_window_either():
    times = at(0, 11, 12)  # calls planned ahead of the slot
    # a call at 5 would put 5, 11 and 12 in the window (2, 12]
    assert not fits(times, at(5)[0], SPAN, cap=2)
    assert fits(times, at(5)[0], SPAN, cap=3)
    assert first_valid([(times, 2)], at(5)[0], SPAN) == at(21)[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=100), max_size=30), st.integers(1, 5))
def test_every_slot_handed_out_keeps_every_window_under_the_cap(starts, cap):
    """Reserving greedily, in any order of requests, never puts more than ``cap`` calls
    in any window of the span."""
    times: list[dt.datetime] = []
    for start in starts:
        slot = first_valid([(sorted(times), cap)], at(start)[0], SPAN)
        assert slot >= at(start)[0]
        times.append(slot)
    times.sort()
    for i, first in enumerate(times):
        inside = [t for t in times[i:] if t < first + SPAN]
        assert len(inside) <= cap


def test_every_limit_must_hold_at_the_slot():
    calls = at(0, 1, 2, 3)  # four calls, two of them creations
    creations = at(0, 1)
    assert first_valid([(calls, 10), (creations, 3)], at(4)[0], SPAN) == at(4)[0]
    assert first_valid([(calls, 10), (creations, 2)], at(4)[0], SPAN) == at(10)[0]
    assert first_valid([(calls, 4), (creations, 3)], at(4)[0], SPAN) == at(10)[0]


def test_a_window_holds_the_calls_after_its_start_up_to_and_at_its_end():
    from shared.quota import in_window

    now, span = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC), dt.timedelta(seconds=9)
    held = [in_window(now + dt.timedelta(seconds=s), now, span) for s in (-9.0, -8.999, 0.0, 0.001)]
    assert held == [False, True, True, False]
