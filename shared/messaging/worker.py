"""The one thread a consumer loop runs its handler in.

A daemon thread, unlike ``ThreadPoolExecutor``'s, which the interpreter joins at exit: a
handler still inside a slow API call when the stop grace runs out must not keep the
process alive past the contract's 10 s. What it leaves unfinished is what a kill -9
leaves, and every handler is written for that (the message comes back; the effect of a
call in flight is settled before it is made again).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class Worker:
    """Runs submitted calls one after another in a single daemon thread."""

    def __init__(self, name: str):
        self._calls: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._calls.put((future, function, args))
        return future

    def close(self) -> None:
        """End the thread once the call in hand (if any) returns."""
        self._calls.put(None)

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            future, function, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as error:  # noqa: BLE001 - the future carries it
                future.set_exception(error)


@dataclass
class Backoff:
    """Doubling waits from ``first_s`` up to ``max_s``, until reset."""

    first_s: float = 0.5
    max_s: float = 30.0
    _next: float = field(default=0.0, init=False)

    def reset(self) -> None:
        self._next = 0.0

    def next(self) -> float:
        self._next = self.first_s if self._next == 0 else min(self._next * 2, self.max_s)
        return self._next
