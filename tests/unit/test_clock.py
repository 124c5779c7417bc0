"""The server's clock (atomchat_server/clock.py) and the tests' one that
advances (tests/support/clock.py): the timers the server sets through them
fire when their time comes, whether that time is reached by waiting or by
``advance()``, once, in order, and never when cancelled."""

from __future__ import annotations

import asyncio

from atomchat_server.clock import REAL

from ..support.clock import ShiftedClock


def test_the_real_clock_runs_timers_and_sleeps_on_the_loop():
    async def run():
        fired: list[str] = []
        REAL.call_later(0.01, fired.append, "cancelled").cancel()
        REAL.call_later(0.01, fired.append, "timer")
        await REAL.sleep(0.02)  # what is tested: the real clock's sleep
        return fired

    assert asyncio.run(run()) == ["timer"]


def test_advancing_fires_what_falls_due_in_order_and_once():
    async def run():
        clock = ShiftedClock()
        fired: list[str] = []
        clock.call_later(30, fired.append, "late")
        clock.call_later(10, fired.append, "early")
        clock.call_later(20, fired.append, "cancelled").cancel()
        clock.call_later(100, fired.append, "later still")
        clock.advance(9)
        assert fired == []
        clock.advance(21)
        assert fired == ["early", "late"]
        clock.advance(21)
        assert fired == ["early", "late"]
        return fired

    assert asyncio.run(run()) == ["early", "late"]


def test_a_timer_of_the_advancing_clock_also_fires_when_its_time_really_passes():
    async def run():
        clock = ShiftedClock()
        fired = asyncio.get_running_loop().create_future()
        clock.call_later(0.01, fired.set_result, "waited for")
        result = await asyncio.wait_for(fired, 1)
        clock.advance(1)  # already fired: not again (a second set_result would raise)
        return result

    assert asyncio.run(run()) == "waited for"


def test_a_sleep_on_the_advancing_clock_ends_when_advanced_past_it():
    async def run():
        clock = ShiftedClock()
        sleeping = asyncio.ensure_future(clock.sleep(60))
        await asyncio.wait([sleeping], timeout=0.01)  # it starts, and sets its timer
        clock.advance(59)
        await asyncio.wait([sleeping], timeout=0.01)
        assert not sleeping.done()
        clock.advance(1)
        await asyncio.wait_for(sleeping, 1)

    asyncio.run(run())
