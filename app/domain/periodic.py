"""A value read from the database at most every so many seconds in each process.

For what only chooses a way, never an answer (a table's size, a column's statistics): a stale
value costs at most a slower plan until the next read.
"""

from __future__ import annotations

import asyncio
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
        self._first: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    async def get(self, conn) -> T:
        """The value; when it is due, read again, while the other callers meanwhile keep the
        value they had (one read at a time once there is one). Before there is one, the callers
        wait for the first read instead of each reading it (a process that starts under load
        would otherwise read it once per request in flight, and hold each copy meanwhile)."""
        if self._last is None:
            loop = asyncio.get_running_loop()
            if self._first is None or self._first[0] is not loop:
                self._first = (loop, asyncio.Lock())
            async with self._first[1]:
                if self._last is None:
                    self._last = (time.monotonic(), await self._read(conn))
            return self._last[1]
        now = time.monotonic()
        if now - self._last[0] > self.seconds and not self._reading:
            self._reading = True
            try:
                self._last = (now, await self._read(conn))
            finally:
                self._reading = False
        return self._last[1]
