"""The quota ledger on PostgreSQL: shared, on the database clock, planning slots ahead."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import OperationalError

from shared.db.models import ApiCall
from shared.db.session import make_engine, make_session_factory
from shared.quota import CREATE, LEDGER_LOCK, QuotaLedger, QuotaPolicy, fast_path

pytestmark = pytest.mark.integration


@pytest.fixture
def sessions(db):
    return make_session_factory(db)


def ledger(sessions, calls=5, window_s=2.0, interval_s=0.0, followups=0) -> QuotaLedger:
    return QuotaLedger(sessions, QuotaPolicy(calls, window_s, interval_s, followups))


def test_calls_are_granted_until_the_window_is_full(sessions):
    quota = ledger(sessions)
    granted = [quota.reserve("get") for _ in range(5)]
    assert all(r.ready and r.id for r in granted)
    refused = quota.reserve("get")
    assert refused.id is None and not refused.ready
    # when the first call leaves the window plus the margin (here the 0.25 s minimum)
    assert quota.policy.span_s == pytest.approx(2.25)
    assert 1.9 < refused.wait_s <= quota.policy.span_s


def test_planned_creations_are_spaced_and_in_increasing_order(sessions):
    quota = ledger(sessions, calls=3, window_s=2.0, interval_s=0.1)
    slots = [quota.plan(CREATE, f"owryt-x-{n:04d}") for n in range(7)]
    times = [s.at for s in slots]
    assert times == sorted(times)
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert all(g >= 0.1 - 1e-6 for g in gaps)
    # the fourth waits for the first to leave the window (2 s plus the margin)
    span = quota.policy.span_s
    assert (slots[3].at - slots[0].at).total_seconds() >= span - 1e-6
    for i, first in enumerate(times):  # and no window ever holds more than 3
        assert len([t for t in times[i:] if (t - first).total_seconds() < span]) <= 3


def test_two_processes_never_overbook_the_window(sessions):
    quota_a, quota_b = ledger(sessions, calls=10), ledger(sessions, calls=10)
    granted: list = []

    def take(quota):
        for _ in range(10):
            reservation = quota.reserve("get")
            if reservation.ready:
                granted.append(reservation)

    threads = [threading.Thread(target=take, args=(q,)) for q in (quota_a, quota_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 10


def test_creations_leave_room_for_the_follow_ups_each_job_needs(sessions):
    quota = ledger(sessions, calls=12, window_s=5.0, followups=2)
    assert quota.policy.creations_per_window == 4  # 4 jobs x 3 calls = 12
    assert all(quota.plan(CREATE, f"owryt-y-{n:04d}").ready for n in range(4))
    fifth = quota.plan(CREATE, "owryt-y-0004")
    assert fifth.wait_s > 4.9  # next window
    follow_ups = [quota.reserve("json") for _ in range(8)]
    assert all(f.ready for f in follow_ups)  # the room kept for them is there
    assert not quota.reserve("json").ready  # and the whole window is 12


def test_jobs_that_cost_more_follow_ups_than_the_setting_shrink_the_creations_share(sessions):
    # packs with problem pages cost a call per page of them on top of status and download
    quota = ledger(sessions, calls=20, window_s=5.0, followups=1)
    assert quota.policy.creations_per_window == 10
    assert all(quota.reserve(CREATE, f"owryt-z-{n:04d}", use=True).ready for n in range(4))
    for kind in ("get", "json", "problematic") * 4:  # 3 follow-ups per job so far
        assert quota.reserve(kind, use=True).ready
    # 20 / (1 + 3) = 5 creations per window now: one more, and the rest waits a window
    assert quota.reserve(CREATE, "owryt-z-0004", use=True).ready
    later = quota.plan(CREATE, "owryt-z-0005")
    assert later.wait_s > 4.9
    assert quota.reserve("get").ready  # while follow-ups still find their room


def test_what_the_api_reports_tightens_the_ledger(sessions, db):
    quota = ledger(sessions, calls=10)
    quota.reserve("get")
    quota.answers.observe(remaining=5)  # another client made 4 calls we did not
    with db.connect() as connection:
        assert (
            connection.execute(select(func.count()).where(ApiCall.kind == "external")).scalar_one()
            == 4
        )
    assert sum(quota.reserve("get").ready for _ in range(6)) == 5


def test_an_api_that_reports_more_room_than_the_ledger_changes_nothing(sessions):
    quota = ledger(sessions, calls=10)
    for _ in range(3):
        quota.reserve("get")
    quota.answers.observe(remaining=10)
    assert quota.used_in_window() == 3


def test_retry_after_blocks_every_caller_until_it_passes(sessions):
    quota = ledger(sessions)
    quota.answers.observe(remaining=None, retry_after_s=1.5)
    blocked = quota.reserve("get")
    assert not blocked.ready and 1.4 < blocked.wait_s <= 1.5
    planned = quota.plan(CREATE, "owryt-b-0000")
    assert 1.4 < planned.wait_s <= 1.6


def test_a_planned_slot_is_claimed_when_due_and_checked_again_when_used(sessions, db):
    quota = ledger(sessions, calls=1, window_s=0.5)
    first = quota.reserve("get")
    planned = quota.plan(CREATE, "owryt-c-0000")
    assert not planned.ready
    early = quota.claim("owryt-c-0000")
    assert early is not None and not early.ready  # still ahead: park again
    with db.begin() as connection:  # due now (the message came back late) ...
        connection.execute(
            update(ApiCall)
            .where(ApiCall.id == planned.id)
            .values(at=func.now() - text("interval '10 seconds'"))
        )
    due = quota.claim("owryt-c-0000")
    assert due is not None and due.ready
    assert quota.mark_used(first, "get")  # ... but a call was made meanwhile
    assert not quota.mark_used(due, CREATE)  # so the window has no room: refused
    assert quota.claim("owryt-c-0000") is None  # and the slot is gone


def test_a_create_of_unknown_effect_is_reported_until_settled(sessions):
    quota = ledger(sessions)
    reservation = quota.plan(CREATE, "owryt-d-0000")
    assert quota.answers.create_made("owryt-d-0000") is None  # not made yet
    quota.mark_used(reservation)
    made = quota.answers.create_made("owryt-d-0000")
    assert made is not None and made.scraping_job_id is None  # made, no answer
    quota.answers.record_outcome(reservation, 502, "Bad Gateway")
    assert quota.answers.create_made("owryt-d-0000") is not None  # a 5xx may have created it
    quota.answers.record_outcome(reservation, None, "settled: not created")
    assert quota.answers.create_made("owryt-d-0000") is None


def test_an_answered_create_keeps_its_job_id_and_a_refused_one_made_nothing(sessions):
    quota = ledger(sessions)
    answered = quota.plan(CREATE, "owryt-e-0000")
    quota.mark_used(answered)
    quota.answers.record_outcome(answered, 200, "OK")
    assert (
        quota.answers.create_made("owryt-e-0000").scraping_job_id is None
    )  # died before reading the id
    quota.answers.record_job(answered, 777)
    assert quota.answers.create_made("owryt-e-0000").scraping_job_id == 777
    refused = quota.plan(CREATE, "owryt-f-0000")
    quota.mark_used(refused)
    quota.answers.record_outcome(refused, 422, "Unprocessable")
    assert quota.answers.create_made("owryt-f-0000") is None


def test_a_call_made_late_moves_its_slot_or_is_refused(sessions, db):
    quota = ledger(sessions, calls=2, window_s=1.0)
    late = quota.reserve("get")
    with db.begin() as connection:  # reserved long ago, made only now
        connection.execute(
            update(ApiCall)
            .where(ApiCall.id == late.id)
            .values(at=func.now() - text("interval '5 seconds'"))
        )
    assert quota.mark_used(late, "get")  # the window is empty: it moves to now
    full = quota.reserve("get")
    assert full.ready and quota.mark_used(full, "get")
    stale = quota.plan("get")  # planned after the two leave the window
    with db.begin() as connection:
        connection.execute(
            update(ApiCall)
            .where(ApiCall.id == stale.id)
            .values(at=func.now() - text("interval '5 seconds'"))
        )
    assert not quota.mark_used(stale, "get")  # now holds two calls already: refused
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ApiCall)).scalar_one() == 2


def test_a_planned_slot_whose_message_is_late_does_not_block_the_call_made_first(sessions, db):
    quota = ledger(sessions, calls=1, window_s=1.0)
    late = quota.plan(CREATE, "owryt-g-0000")
    prompt = quota.plan(CREATE, "owryt-g-0001")
    with db.begin() as connection:  # both due; the first one's message has not come back
        for reservation, ago in ((late, "0.3"), (prompt, "0.2")):
            connection.execute(
                update(ApiCall)
                .where(ApiCall.id == reservation.id)
                .values(at=func.now() - text(f"interval '{ago} seconds'"))
            )
    due = quota.claim("owryt-g-0001")
    assert due is not None and due.ready
    assert quota.mark_used(due, CREATE)  # a slot planned but never used is no call made
    assert not quota.mark_used(quota.claim("owryt-g-0000"), CREATE)  # now the window is full


def test_a_call_reserved_at_once_sees_every_call_committed_before_it_got_the_lock(sessions, db):
    """The one-round-trip reservation takes the lock in a statement of its own, so its
    count is not of a snapshot older than the lock (which would let it overbook)."""
    quota = ledger(sessions, calls=3, window_s=5.0)
    quota.reserve("get")
    granted: list = []
    with db.connect() as holder:
        holder.execute(select(func.pg_advisory_xact_lock(LEDGER_LOCK)))
        waiter = threading.Thread(target=lambda: granted.append(quota.reserve("get")))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive()  # it waits for the lock
        # while it waits, another caller fills the window and commits (releasing the lock)
        now = holder.execute(select(func.clock_timestamp())).scalar_one()
        holder.execute(insert(ApiCall), [{"kind": "get", "at": now}] * 2)
        holder.commit()
    waiter.join(10)
    assert len(granted) == 1 and not granted[0].ready and granted[0].id is None
    assert quota.used_in_window() == 3


def test_calls_at_once_and_the_general_path_agree_at_the_cap(sessions, db):
    quota = ledger(sessions, calls=4, window_s=5.0)
    now = quota.reserve("json", "owryt-h-0000", use=True)
    assert now.ready and now.wait_s == 0
    with db.connect() as connection:
        row = connection.execute(
            select(ApiCall.kind, ApiCall.custom_id, ApiCall.used_at, ApiCall.at).where(
                ApiCall.id == now.id
            )
        ).one()
    assert row.kind == "json" and row.custom_id == "owryt-h-0000" and row.used_at == row.at
    unused = quota.reserve("get")
    assert unused.ready
    with db.connect() as connection:
        assert (
            connection.execute(select(ApiCall.used_at).where(ApiCall.id == unused.id)).scalar_one()
            is None
        )
    # a planned creation ahead counts too: the fourth call of the window is the last
    quota.plan("get", not_before_s=1.0)
    assert quota.reserve("get").ready
    refused = quota.reserve("get")
    assert refused.id is None and refused.wait_s > 4.0


def test_an_agreeing_outcome_changes_nothing_and_a_429_blocks_for_its_retry_after(sessions, db):
    quota = ledger(sessions, calls=10)
    call = quota.reserve("get", use=True)
    quota.answers.record_outcome(call, 200, "OK", remaining=9)
    quota.answers.record_outcome(
        quota.reserve("get", use=True), 429, "Too Many", 0, retry_after_s=1
    )
    with db.connect() as connection:
        assert connection.execute(
            select(ApiCall.status, ApiCall.outcome).where(ApiCall.id == call.id)
        ).one() == (200, "OK")
        kinds = connection.execute(select(ApiCall.kind)).scalars().all()
    # the 429's "0 left" is not turned into calls that would hold the ledger a whole
    # window: its Retry-After blocks until the API has room again
    assert sorted(kinds) == ["get", "get"]
    refused = quota.reserve("get")
    assert not refused.ready and 0 < refused.wait_s <= 1.0


def test_a_connection_used_for_a_call_at_once_is_transactional_again_afterwards(db):
    engine = make_engine(db.url, pool_size=1, max_overflow=0)  # one connection: the same one
    sessions = make_session_factory(engine)
    try:
        quota = ledger(sessions, calls=10)
        assert quota.reserve("get").ready  # the one-round-trip path, in autocommit
        with sessions() as session:
            assert session.connection().connection.driver_connection.autocommit is False
            session.execute(insert(ApiCall).values(kind="get", at=func.now()))
            session.rollback()
        assert quota.used_in_window() == 1
    finally:
        engine.dispose()


def outcomes(db) -> dict[int, tuple]:
    with db.connect() as connection:
        rows = connection.execute(select(ApiCall.id, ApiCall.status, ApiCall.outcome)).all()
    return {row.id: (row.status, row.outcome) for row in rows}


def test_answers_held_together_are_written_at_the_end_in_one_go(sessions, db):
    quota = ledger(sessions, calls=10)
    with quota.answers.outcomes_together():
        first, second = quota.reserve("get", use=True), quota.reserve("json", use=True)
        quota.answers.record_outcome(first, 200, "OK", remaining=9)
        quota.answers.record_outcome(second, 404, "Not Found", remaining=8)
        assert outcomes(db) == {first.id: (None, None), second.id: (None, None)}
        assert quota.used_in_window() == 2  # the calls count at once; only answers wait
    assert outcomes(db) == {first.id: (200, "OK"), second.id: (404, "Not Found")}
    assert quota.used_in_window() == 2  # the API agreed: nothing else written


def test_held_answers_that_report_less_room_tighten_the_ledger_at_the_end(sessions, db):
    quota = ledger(sessions, calls=10)
    with quota.answers.outcomes_together():
        call = quota.reserve("get", use=True)
        quota.answers.record_outcome(call, 200, "OK", remaining=7)  # two calls we did not make
        quota.answers.record_outcome(quota.reserve("get", use=True), 200, "OK", remaining=6)
    assert quota.used_in_window() == 4  # the lowest remaining (6) decides: 2 external


def test_a_retry_after_within_held_answers_blocks_at_once(sessions):
    quota = ledger(sessions, calls=10)
    with quota.answers.outcomes_together():
        quota.answers.record_outcome(
            quota.reserve("get", use=True), 429, "Too Many", 0, retry_after_s=5
        )
        assert not quota.reserve("get").ready  # not held back: the block is in force now


def test_held_answers_the_database_cannot_take_are_dropped_with_a_warning(
    sessions, db, monkeypatch, caplog
):
    quota = ledger(sessions, calls=10)

    def down(*args, **kwargs):
        raise OperationalError("UPDATE", {}, Exception("the database is restarting"))

    monkeypatch.setattr(fast_path, "record_outcomes", down)
    with quota.answers.outcomes_together():
        call = quota.reserve("get", use=True)
        quota.answers.record_outcome(call, 200, "OK", remaining=9)
    assert outcomes(db) == {call.id: (None, None)}  # the call itself stays counted
    assert "the answers of 1 API calls were not recorded" in caplog.text


def test_an_answer_that_reports_less_room_tightens_the_ledger_at_once(sessions, db):
    quota = ledger(sessions, calls=10)
    call = quota.reserve("get", use=True)
    quota.answers.record_outcome(call, 200, "OK", remaining=7)  # two calls we did not make
    assert outcomes(db)[call.id] == (200, "OK")
    assert quota.used_in_window() == 3


def test_a_reservation_is_used_once_only(sessions):
    quota = ledger(sessions, calls=5)
    slot = quota.plan(CREATE, "owryt-x-0000")
    assert quota.mark_used(slot, CREATE)
    assert not quota.mark_used(slot, CREATE)  # a second caller holding the same slot
    assert quota.used_in_window() == 1  # and the window did not lose a call


def test_a_slot_claimed_before_a_429_is_not_used_while_the_block_is_in_force(sessions, db):
    quota = ledger(sessions, calls=5)
    slot = quota.plan(CREATE, "owryt-x-0000")
    assert slot.ready
    quota.answers.observe(None, retry_after_s=5)  # a 429 another caller got meanwhile
    assert not quota.mark_used(slot, CREATE)
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ApiCall)).scalar_one() == 0


def test_two_processes_at_the_cap_for_several_windows_keep_every_window_and_get_no_429(
    sessions, db, database_url, sim, monkeypatch
):
    """Two processes start together and call as fast as the ledger lets them for about
    three windows: no sliding window of the ledger holds more than the cap, the
    simulator (a fixed window, as the real API's headers suggest) answers no 429, and
    the cap was really reached, window after window."""
    import json
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import SIM_TOKEN

    calls, window_s, run_s = 20, 3.0, 9.5
    monkeypatch.setattr(sim.state.config, "quota_calls", calls)
    monkeypatch.setattr(sim.state.config, "quota_window_s", window_s)
    start = time.time() + 2.0  # time for both to import and connect
    args = [database_url, sim.api_url, SIM_TOKEN, str(calls), str(window_s)]
    args += [str(start), str(start + run_s)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.quota_worker", *args],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=30)[0]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert [r["429"] for r in results] == [0, 0]
    assert [c for c in sim.state.snapshot()["calls"] if c["status"] == 429] == []
    assert all(r["made"] > 0 for r in results)  # both really competed
    with db.connect() as connection:
        made = (
            connection.execute(
                select(ApiCall.used_at)
                .where(ApiCall.used_at.is_not(None))
                .order_by(ApiCall.used_at)
            )
            .scalars()
            .all()
        )
    assert len(made) == sum(r["made"] for r in results)
    for i, first in enumerate(made):  # every sliding window, not just the total
        in_window = sum(1 for t in made[i:] if (t - first).total_seconds() < window_s)
        assert in_window <= calls, f"{in_window} calls in the window from {first}"
    assert len(made) >= 3 * calls  # at the cap in every one of the (three and more) windows
