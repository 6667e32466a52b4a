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


class _ReaderCancelled(Exception):
    """The caller reading the first value was cancelled: a caller waiting for it reads it."""


class Periodic(Generic[T]):
    def __init__(self, seconds: float, read: Callable[[object], Awaitable[T]]) -> None:
        self.seconds = seconds
        self._read = read
        self._last: tuple[float, T] | None = None  # (when read, time.monotonic(); the value)
        self._reading = False
        self._first: asyncio.Future | None = None  # the first read's outcome, while it runs

    async def get(self, conn) -> T:
        """The value; when it is due, read again, while the other callers meanwhile keep the
        value they had (one read at a time once there is one). Before there is one, the callers
        share the first read: the one that starts it reads on its own connection, and the others
        wait for its outcome, the value or the same error (a process that starts under load
        would otherwise read it once per request in flight, and hold each copy meanwhile).
        Should the reader be cancelled, a waiter reads instead."""
        while self._last is None:
            loop = asyncio.get_running_loop()
            pending = self._first
            if pending is not None and not pending.done() and pending.get_loop() is loop:
                try:
                    return await asyncio.shield(pending)
                except _ReaderCancelled:
                    continue
            return await self._read_first(conn, loop)
        if time.monotonic() - self._last[0] > self.seconds:
            await self._read_again(conn)
        return self._last[1]

    def current(self) -> T | None:
        """The value last read, however old, without reading (None before the first read)."""
        return None if self._last is None else self._last[1]

    async def refresh(self, conn) -> None:
        """Read the value again now, unless a read is under way (before there is one, as get
        reads it, shared with the callers waiting for it): for a task that keeps the value
        fresh, so that no caller waits for a read. Its errors are the caller's."""
        if self._last is None:
            await self.get(conn)
        else:
            await self._read_again(conn)

    async def _read_again(self, conn) -> None:
        """Once there is a value: read it again, unless a read is under way."""
        if self._reading:
            return
        self._reading = True
        try:
            now = time.monotonic()
            self._last = (now, await self._read(conn))
        finally:
            self._reading = False

    async def _read_first(self, conn, loop: asyncio.AbstractEventLoop) -> T:
        outcome = self._first = loop.create_future()
        try:
            value = await self._read(conn)
        except BaseException as exc:
            outcome.set_exception(_ReaderCancelled() if isinstance(exc, asyncio.CancelledError) else exc)
            outcome.exception()  # retrieved: no waiter may be there to (asyncio would log it)
            raise
        finally:
            self._first = None
        self._last = (time.monotonic(), value)
        outcome.set_result(value)
        return value
