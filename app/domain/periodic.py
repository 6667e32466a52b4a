"""A value read from the database at most every so many seconds in each process.

For what only chooses a way, never an answer (a table's size, a column's statistics): a stale
value costs at most a slower plan until the next read.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Periodic(Generic[T]):
    def __init__(self, seconds: float, read: Callable[[object], Awaitable[T]]) -> None:
        self.seconds = seconds
        self._read = read
        self._last: tuple[float, T] | None = None  # (when read, time.monotonic(); the value)
        self._reading = False

    async def get(self, conn) -> T:
        """The value; when it is due, read again, while the other callers meanwhile keep the
        value they had (one read at a time once there is one)."""
        now = time.monotonic()
        if self._last is None or (now - self._last[0] > self.seconds and not self._reading):
            self._reading = True
            try:
                self._last = (now, await self._read(conn))
            finally:
                self._reading = False
        return self._last[1]
