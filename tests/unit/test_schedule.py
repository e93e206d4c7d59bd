"""The schedule (shared/domain/schedule.py): examples, then properties over any looks."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.dates import estimate_span
from shared.domain.schedule import TOKYO, Looks, Schedule, next_look

HOUR = 3600.0
SCHEDULE = Schedule()
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TOKYO)


def looks(**overrides):
    values = dict(first_at=NOW, last_at=NOW, count=1, status="処理中", estimate=None)
    return Looks(**{**values, **overrides})


def wait_h(found: dt.datetime | None) -> float | None:
    return None if found is None else (found - NOW).total_seconds() / HOUR


def days_ahead(first: int, last: int) -> tuple[dt.date, dt.date]:
    today = NOW.date()
    return today + dt.timedelta(days=first), today + dt.timedelta(days=last)


def test_a_far_estimate_is_looked_at_every_ten_days():
    assert wait_h(next_look(looks(estimate=days_ahead(20, 24)), NOW, SCHEDULE)) == 240


def test_the_far_wait_ends_where_shipping_becomes_likely():
    # the estimate begins on 4 December: shipping likely from 2 December, 00:00 Tokyo
    found = next_look(looks(estimate=days_ahead(3, 5)), NOW, SCHEDULE)
    assert found == dt.datetime(2026, 12, 2, 0, 0, tzinfo=TOKYO)


@pytest.mark.parametrize("first,last", [(1, 3), (0, 2), (-2, -1)])
def test_while_shipping_is_likely_or_a_little_late_it_looks_daily(first, last):
    assert wait_h(next_look(looks(estimate=days_ahead(first, last)), NOW, SCHEDULE)) == 24


def test_later_than_orders_ship_the_wait_grows_with_the_lateness():
    # the estimate ended on 28 November (00:00 Tokyo), 3 days 10 hours ago
    assert wait_h(next_look(looks(estimate=days_ahead(-5, -3)), NOW, SCHEDULE)) == 82
    very_late = looks(estimate=days_ahead(-25, -20))
    assert wait_h(next_look(very_late, NOW, SCHEDULE)) == 240  # the far cap


def test_apple_preparing_the_parcel_is_looked_at_every_few_hours_however_far_the_estimate():
    preparing = looks(status="出荷準備中", estimate=days_ahead(10, 14))
    assert wait_h(next_look(preparing, NOW, SCHEDULE)) == 4.5
    assert wait_h(next_look(looks(status="出荷準備中"), NOW, SCHEDULE)) == 4.5


def test_without_an_estimate_the_back_off_doubles_to_its_cap():
    waits = [wait_h(next_look(looks(count=n), NOW, SCHEDULE)) for n in (1, 2, 3, 6, 30)]
    assert waits == [0.5, 1, 2, 16, 24]


@pytest.mark.parametrize("status", ["キャンセル済み", "配達完了", "差出人に返送済み"])
def test_a_story_that_is_over_is_never_looked_at_again(status):
    assert next_look(looks(status=status), NOW, SCHEDULE) is None
    assert next_look(looks(status=status, has_number=True), NOW, SCHEDULE) is None


def test_no_look_is_planned_at_or_after_the_expiry():
    first = NOW - dt.timedelta(seconds=SCHEDULE.expire_s - 3 * HOUR)  # 3 hours left
    assert next_look(looks(first_at=first, count=40), NOW, SCHEDULE) is None  # 24 h
    soon = looks(first_at=first, count=2)  # the back-off's second wait: 1 hour
    assert wait_h(next_look(soon, NOW, SCHEDULE)) == 1


@pytest.mark.parametrize(
    "status,hours",
    [("配達中", 2), ("輸送中", 6), ("伝票番号未登録", 12), ("ご不在のため持ち戻り", 24), (None, 6)],
)
def test_with_a_number_the_status_code_sets_the_wait(status, hours):
    found = next_look(looks(status=status, has_number=True), NOW, SCHEDULE)
    assert wait_h(found) == hours


def test_the_next_look_is_never_before_the_latest_one():
    later = NOW + dt.timedelta(hours=3)  # a look recorded on a clock ahead of ours
    found = next_look(looks(last_at=later, count=1), NOW, SCHEDULE)
    assert found == later + dt.timedelta(minutes=30)


def test_a_range_estimate_gives_its_first_and_last_day():
    scraped = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert estimate_span("2026/12/05 - 2026/12/08", scraped) == days_ahead(4, 7)
    assert estimate_span("12/30 - 01/02", scraped) == (dt.date(2026, 12, 30), dt.date(2027, 1, 2))
    assert estimate_span("2026年12月9日（水）", scraped) == (dt.date(2026, 12, 9),) * 2
    assert estimate_span("-", scraped) is None


# -- properties: any looks, any knobs that keep their order ---------------------------------

STATUSES = st.sampled_from(
    [
        None,
        "",
        "処理中",
        "出荷準備中",
        "配送準備中",
        "伝票番号未登録",
        "輸送中",
        "配達中",
        "持戻（ご不在）",
        "保管",
        "調査中",
        "何か新しい状態",
        "キャンセル済み",
        "配達完了",
    ]
)
MOMENTS = st.datetimes(
    min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2028, 1, 1), timezones=st.just(dt.UTC)
)


@st.composite
def schedules(draw):
    cuts = sorted(draw(st.lists(st.floats(0, 2_000_000), min_size=4, max_size=4)))
    base = draw(st.floats(0, 100_000))
    return Schedule(
        min_s=cuts[0],
        preparing_s=cuts[1],
        likely_s=cuts[2],
        far_s=cuts[3],
        transit_s=draw(st.floats(0, 500_000)),
        late_s=draw(st.floats(0, 1_000_000)),
        base_s=base,
        max_s=base + draw(st.floats(0, 100_000)),
        expire_s=draw(st.floats(1, 5_000_000)),
        refresh_s=draw(st.floats(1, 100_000)),
    )


@st.composite
def any_looks(draw):
    first = draw(MOMENTS)
    last = first + dt.timedelta(seconds=draw(st.floats(0, 4_000_000)))
    estimate = None
    if draw(st.booleans()):
        start = (first + dt.timedelta(days=draw(st.integers(-10, 60)))).date()
        estimate = (start, start + dt.timedelta(days=draw(st.integers(0, 10))))
    return Looks(
        first_at=first,
        last_at=last,
        count=draw(st.integers(1, 500)),
        status=draw(STATUSES),
        estimate=estimate,
        has_number=draw(st.booleans()),
    ), last + dt.timedelta(seconds=draw(st.floats(-3_600, 100_000)))


@given(any_looks(), schedules())
def test_never_before_the_minimum_interval_nor_before_the_latest_look(case, schedule):
    seen, now = case
    found = next_look(seen, now, schedule)
    if found is not None:
        assert found >= now + dt.timedelta(seconds=schedule.min_s) - dt.timedelta(microseconds=1)
        assert found >= seen.last_at


@given(any_looks(), schedules())
def test_never_at_or_after_the_expiry_without_a_number(case, schedule):
    seen, now = case
    found = next_look(seen, now, schedule)
    if found is not None and not seen.has_number:
        assert found < seen.first_at + dt.timedelta(seconds=schedule.expire_s)


@given(any_looks(), schedules())
def test_every_purchase_still_followed_is_looked_at_again_within_the_cap(case, schedule):
    seen, now = case
    found = next_look(seen, now, schedule)
    if found is not None:
        start = max(now, seen.last_at)
        assert found <= start + dt.timedelta(seconds=schedule.cap_s) + dt.timedelta(microseconds=1)


@given(any_looks(), schedules())
def test_only_an_ended_story_or_the_expiry_stops_the_looks(case, schedule):
    seen, now = case
    if next_look(seen, now, schedule) is None:
        over = seen.status in ("キャンセル済み", "配達完了")
        start = max(now, seen.last_at)
        expiring = start + dt.timedelta(seconds=schedule.cap_s) >= seen.first_at + dt.timedelta(
            seconds=schedule.expire_s
        )
        assert over or (expiring and not seen.has_number)
