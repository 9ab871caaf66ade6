"""SyncThread: calls run on its one thread, in order; errors reach the awaiter."""

from __future__ import annotations

import asyncio
import threading

import pytest

from real.storage.sync_thread import SyncThread


def test_calls_run_in_order_on_one_other_thread() -> None:
    async def main() -> None:
        worker = SyncThread("test-sync")
        seen: list[tuple[int, int]] = []
        try:
            for number in range(5):
                await worker.run(lambda n=number: seen.append((n, threading.get_ident())))
        finally:
            worker.close()
        assert [n for n, _ in seen] == list(range(5))
        assert len({ident for _, ident in seen}) == 1
        assert seen[0][1] != threading.get_ident()

    asyncio.run(main())


def test_an_error_is_raised_to_the_awaiter() -> None:
    def fail() -> None:
        raise OSError("disk on fire")

    async def main() -> None:
        worker = SyncThread()
        try:
            with pytest.raises(OSError, match="disk on fire"):
                await worker.run(fail)
            await worker.run(lambda: None)  # the thread survives a failed call
        finally:
            worker.close()

    asyncio.run(main())


def test_a_cancelled_awaiter_does_not_break_the_thread() -> None:
    async def main() -> None:
        worker = SyncThread()
        release = threading.Event()
        try:
            slow = asyncio.ensure_future(worker.run(release.wait))
            await asyncio.sleep(0)
            slow.cancel()
            release.set()
            await worker.run(lambda: None)
            assert slow.cancelled()
        finally:
            worker.close()

    asyncio.run(main())


def test_close_ends_the_thread() -> None:
    async def main() -> None:
        worker = SyncThread("test-close")
        await worker.run(lambda: None)
        worker.close()
        worker.close()  # idempotent
        worker._thread.join(timeout=5)
        assert not worker._thread.is_alive()

    asyncio.run(main())
