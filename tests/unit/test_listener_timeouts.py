"""The waiting listeners' deadlines (notifier.Timeouts): one heap under one
event-loop timer ends each sleep at its own deadline, in order; a sleep woken
early is not ended again, and what such sleeps leave behind is swept."""

from __future__ import annotations

import asyncio

from atomchat_server.notifier import Listener, Timeouts


def test_each_sleep_ends_at_its_own_deadline_in_order():
    async def run():
        loop = asyncio.get_running_loop()
        timeouts = Timeouts()
        ended: list[str] = []

        async def sleeper(name: str, delay: float) -> None:
            await Listener(name).sleep(loop.time() + delay, timeouts)
            ended.append(name)

        start = loop.time()
        # The latest first: the timer must be moved earlier for the others.
        await asyncio.gather(sleeper("late", 0.15), sleeper("early", 0.03), sleeper("middle", 0.08))
        return ended, loop.time() - start

    ended, took = asyncio.run(run())
    assert ended == ["early", "middle", "late"]
    # The event loop may run a timer up to its clock's resolution early.
    assert 0.15 - 1e-6 <= took < 1.0


def test_a_woken_sleep_ends_at_once_and_its_deadline_is_skipped():
    async def run():
        loop = asyncio.get_running_loop()
        timeouts = Timeouts()
        listener = Listener("@a:x")
        sleeping = listener.sleep(loop.time() + 0.05, timeouts)
        listener.wake()
        await sleeping
        # The next sleep, with no deadline, is not ended by the first one's.
        second = listener.sleep(None, timeouts)
        await asyncio.sleep(0.1)
        assert not second.done()
        listener.wake()
        await second

    asyncio.run(run())


def test_entries_of_sleeps_woken_early_are_swept():
    async def run():
        loop = asyncio.get_running_loop()
        timeouts = Timeouts()
        listener = Listener("@a:x")
        for _ in range(1000):
            listener.sleep(loop.time() + 60, timeouts)
            listener.wake()
        assert len(timeouts._heap) <= 2 * Timeouts.SLACK + 1
        timeouts.stop()

    asyncio.run(run())


def test_a_wake_with_no_sleeper_tells_the_stream():
    async def run():
        loop = asyncio.get_running_loop()
        listener = Listener("@a:x")
        told: list[bool] = []
        listener.woken = lambda: told.append(True)
        timeouts = Timeouts()
        await listener.sleep(loop.time() + 0.01, timeouts)  # a sleep that ended stands for no sleeper
        listener.wake()
        return told

    assert asyncio.run(run()) == [True]
