"""SyncThread: one long-lived worker thread that runs the runtime's fsyncs.

Theory of operation
-------------------
The runtime makes every Ready durable (`storage.sync()`, an SQLite commit
with fsync) off the event loop, so the loop keeps taking requests during
the fsync (group commit). `asyncio.to_thread` does that through the loop's
default executor: per call a context copy, a work item, a
`concurrent.futures.Future` chained to an asyncio future, and a thread-pool
queue. Measured (docs/benchmarks.md, "Real nodes"), that machinery costs
about a fifth of the ~100 µs of CPU the thread hand-off adds to each fsync.
`SyncThread` keeps the hand-off down to the minimum: the loop puts the call
and its asyncio future on a `SimpleQueue`; the one thread runs the call and
settles the future with one `call_soon_threadsafe`.

Calls run one at a time, in submission order (the runtime awaits each one
before the next anyway). An exception raised by the call is set on the
future, so the awaiting driver sees the storage error as with `to_thread`.
`close()` ends the thread after the calls already queued; a call whose loop
has closed meanwhile is dropped silently (nobody awaits it any more).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable

# The stop marker put on the queue by close().
_STOP = None


class SyncThread:
    """Runs blocking calls one at a time on one daemon thread (see above)."""

    def __init__(self, name: str = "chainfire-sync") -> None:
        self._calls: queue.SimpleQueue[
            tuple[Callable[[], None], asyncio.Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def run(self, call: Callable[[], None]) -> asyncio.Future[None]:
        """A future of the running loop that settles once `call()` returned
        (its result None) or raised (its exception)."""
        assert not self._closed, "run after close"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._calls.put((call, future))
        return future

    def close(self) -> None:
        """Let the thread end after the calls already queued. Idempotent."""
        if not self._closed:
            self._closed = True
            self._calls.put(_STOP)

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            call, future = item
            error: BaseException | None = None
            try:
                call()
            except BaseException as failure:  # handed to the awaiting driver
                error = failure
            # RuntimeError: the loop closed, so nobody awaits this call any more.
            with contextlib.suppress(RuntimeError):
                future.get_loop().call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return  # the awaiting task was cancelled
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


__all__ = ["SyncThread"]
