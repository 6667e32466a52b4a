"""One LISTEN connection per server process, shared by everything that waits for PostgreSQL's
notifications (live updates, caches that must forget what changed).

PostgreSQL delivers a NOTIFY only after its transaction commits, and never for one that rolled
back, so a notification says "something committed". Notifications sent while this connection is
down are lost for good: consumers register on_state and, when it reports False then True again,
recover what they missed from the database (the activity log) or distrust what they cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import asyncpg

from app import metrics

log = logging.getLogger("app.listener")

# Reconnection backoff: doubling from the first to the last delay, with jitter.
FIRST_DELAY = 0.1
LAST_DELAY = 5.0
# How often an idle connection is asked whether it still lives: a connection lost without a FIN
# (a network partition) is otherwise found only when the kernel gives up on it, minutes later.
PROBE_INTERVAL = 5.0
PROBE_TIMEOUT = 3.0
SERVER_SETTINGS = {"application_name": "incident-graph-listener"}
NOTIFY = "SELECT pg_notify($1, $2)"


class Listener:
    """The process's LISTEN connection: reconnects with backoff and re-issues every LISTEN."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._channels: dict[str, list[Callable[[str], None]]] = {}
        self._state_callbacks: list[Callable[[bool], None]] = []
        self._conn: asyncpg.Connection | None = None
        self._connected = False
        self._lost = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the connection

    @property
    def connected(self) -> bool:
        """Whether the connection is up with every channel's LISTEN issued."""
        return self._connected

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call callback(payload) for every notification on channel (synchronously: it must not block).

        A channel subscribed while connected is listened to at once; otherwise at the next connect.
        """
        first = channel not in self._channels
        self._channels.setdefault(channel, []).append(callback)
        if first and self._conn is not None and self._connected:
            task = asyncio.get_running_loop().create_task(self._listen(self._conn, channel))
            task.add_done_callback(self._listen_done)

    def on_state(self, callback: Callable[[bool], None]) -> None:
        """Call callback(False) when the connection is lost, callback(True) once it is back."""
        self._state_callbacks.append(callback)

    async def notify(self, channel: str, payload: str) -> None:
        """Send a notification from this connection itself; raises ConnectionError while it is down.

        Heard back, it proves that the backend which LISTENs is alive and has been delivered every
        notification committed before it was sent (a heartbeat sent through another connection
        proves nothing of the sort behind a transaction-pooling proxy, and waits behind requests).
        """
        conn = self._conn
        if conn is None or not self._connected:
            raise ConnectionError("the LISTEN connection is down")
        async with self._lock, asyncio.timeout(PROBE_TIMEOUT):
            await conn.execute(NOTIFY, channel, payload)

    async def start(self) -> None:
        """Connect (retrying in the background if PostgreSQL is not reachable yet)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="listener")

    async def stop(self) -> None:
        """Close the connection and stop reconnecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()
        self._connected = False
        metrics.LISTENER_CONNECTED.set(0)

    async def _run(self) -> None:
        delay = FIRST_DELAY
        while True:
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listener: cannot connect to PostgreSQL (%s), retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, LAST_DELAY)
                continue
            delay = FIRST_DELAY
            await self._watch()
            await self._close()
            self._set_state(False)

    async def _connect(self) -> None:
        self._lost.clear()
        conn = await asyncpg.connect(self.dsn, timeout=PROBE_TIMEOUT, server_settings=SERVER_SETTINGS)
        conn.add_termination_listener(lambda _conn: self._lost.set())
        self._conn = conn
        try:
            for channel in list(self._channels):
                await self._listen(conn, channel)
        except BaseException:
            await self._close()
            raise
        self._set_state(True)

    async def _listen(self, conn: asyncpg.Connection, channel: str) -> None:
        async with self._lock:
            await conn.add_listener(channel, self._notified)

    def _listen_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("listener: LISTEN failed (%s); reconnecting", task.exception())
            self._lost.set()

    async def _watch(self) -> None:
        """Return when the connection is lost (closed by the server, or a probe fails)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROBE_INTERVAL):
                    await self._lost.wait()
            if self._lost.is_set():
                return
            try:
                async with self._lock, asyncio.timeout(PROBE_TIMEOUT):
                    await self._conn.execute("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listener: connection probe failed (%s)", exc)
                return

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(1.0):
                    await conn.close()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()

    def _notified(self, _conn, _pid: int, channel: str, payload: str) -> None:
        for callback in self._channels.get(channel, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("listener: a callback of channel %s failed", channel)

    def _set_state(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        metrics.LISTENER_CONNECTED.set(1 if connected else 0)
        if connected:
            log.info("listener: connected, listening on %s", ", ".join(sorted(self._channels)) or "no channel yet")
        else:
            metrics.LISTENER_LOST.inc()
            log.warning("listener: connection to PostgreSQL lost; notifications missed until it is back")
        for callback in self._state_callbacks:
            try:
                callback(connected)
            except Exception:
                log.exception("listener: a state callback failed")
