"""The viewers of API tokens this process has verified, so that a request does not look its token
up in PostgreSQL every time (issue 19).

Trusted only while the process provably hears every access change:
- Every change to users, grants or api_tokens notifies `incident_graph_access` from the database
  (db/migrations/0018_access_changes.sql); on it the cache forgets everything.
- The process sends itself a heartbeat through `incident_graph_token_cache` every
  HEARTBEAT_INTERVAL, from the listening connection itself (Listener.notify): never queued
  behind requests for a pool's connection, and heard back only if the very backend that LISTENs
  is alive. PostgreSQL delivers the notifications of a listening connection in commit order, so
  hearing a heartbeat sent at time t proves that every access change committed before t has been
  heard. The cache answers only while the last heartbeat heard was sent within
  TRUST_WINDOW: a revoked token is refused by every process at most TRUST_WINDOW after the revoke
  committed, even if a listening connection died without a word.
- While the listener is down, and until a heartbeat sent after it reconnected comes back, every
  request looks its token up in PostgreSQL (fail closed).
- A lookup that overlapped an access change, a change of the listener's state or the return of
  trust is not cached (a generation counter), so an answer read before a revoke, or while
  changes went unheard, cannot outlive them.

Only tokens that authenticate are cached, at most MAX_ENTRIES (least recently used first out),
each for at most TTL seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import asyncpg

from app import metrics
from app.domain import users
from app.domain.viewers import Viewer

log = logging.getLogger("app.token_cache")

ACCESS_CHANNEL = "incident_graph_access"
HEARTBEAT_CHANNEL = "incident_graph_token_cache"
MAX_ENTRIES = 10_000
TTL = 60.0
TRUST_WINDOW = 1.0
HEARTBEAT_INTERVAL = 0.25
SILENCE_WARNING = 5.0  # listening, yet no heartbeat heard back for this long: say so

FROM_CACHE = metrics.TOKEN_LOOKUPS.labels("cache")
FROM_DATABASE = metrics.TOKEN_LOOKUPS.labels("database")


class Listening(Protocol):
    """What the cache needs of app.listener.Listener."""

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> None: ...
    def on_state(self, callback: Callable[[bool], None]) -> None: ...
    async def notify(self, channel: str, payload: str) -> None: ...


class TokenCache:
    """Verified tokens' viewers, per process, dropped on any access change (see the module)."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        ttl: float = TTL,
        trust_window: float = TRUST_WINDOW,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.trust_window = trust_window
        self.heartbeat_interval = heartbeat_interval
        self.clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Viewer]] = OrderedDict()
        self._generation = 0
        self._listening = False
        self._listening_since = 0.0
        self._heard_at: float | None = None  # when the last heartbeat heard back was sent
        self._sent: dict[int, float] = {}  # heartbeats not heard yet: sequence -> sent at
        self._sequence = 0
        self._name = f"{os.getpid()}.{secrets.token_hex(4)}"
        self._task: asyncio.Task | None = None
        self._heartbeat_failing = False
        self._silence_reported = False

    @property
    def trusted(self) -> bool:
        """Whether every access change committed more than TRUST_WINDOW ago has been heard."""
        return self._listening and self._heard_at is not None and self.clock() - self._heard_at <= self.trust_window

    def __len__(self) -> int:
        return len(self._entries)

    async def start(self, *, listener: Listening) -> None:
        """Hear access changes on the listener, and send heartbeats from its connection."""
        listener.subscribe(ACCESS_CHANNEL, self._access_changed)
        listener.subscribe(HEARTBEAT_CHANNEL, self._heartbeat_heard)
        listener.on_state(self._listener_state)
        if getattr(listener, "connected", False):
            self._listener_state(True)
        self._task = asyncio.get_running_loop().create_task(self._send_heartbeats(listener), name="token-cache")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._forget()
        self._listening = False

    async def viewer_for_token(self, *, conn, token: str) -> Viewer | None:
        """users.viewer_for_token, answered from the cache while it is trusted."""
        if not users.well_formed(token):
            return None
        if not self.trusted:
            FROM_DATABASE.inc()
            return await users.viewer_for_token(conn=conn, token=token)
        key = users.hash_token(token)
        now = self.clock()
        cached = self._entries.get(key)
        if cached is not None:
            if cached[0] > now:
                self._entries.move_to_end(key)
                FROM_CACHE.inc()
                return cached[1]
            del self._entries[key]
        FROM_DATABASE.inc()
        generation = self._generation
        viewer = await users.viewer_for_token(conn=conn, token=token)
        if viewer is not None and generation == self._generation and self.trusted:
            self._entries[key] = (now + self.ttl, viewer)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return viewer

    def _forget(self) -> None:
        self._entries.clear()
        self._generation += 1

    def _access_changed(self, _payload: str) -> None:
        self._forget()

    def _listener_state(self, connected: bool) -> None:
        # Either way what was cached may be stale: changes made while it was down were not heard.
        self._forget()
        self._listening = connected
        self._listening_since = self.clock()
        self._heard_at = None
        self._sent.clear()

    def _heartbeat_heard(self, payload: str) -> None:
        name, _, sequence = payload.rpartition(":")
        if name != self._name or not sequence.isdigit():
            return
        sent = self._sent.pop(int(sequence), None)
        if sent is None or not self._listening:
            return
        if not self.trusted:
            self._generation += 1  # lookups that started untrusted may have read what went unheard
        self._heard_at = sent if self._heard_at is None else max(self._heard_at, sent)
        for older in [s for s in self._sent if s < int(sequence)]:
            del self._sent[older]  # lost with a connection, or overtaken: never coming

    async def _send_heartbeats(self, listener: Listening) -> None:
        while True:
            if self._listening:  # while it is down the listener says so itself
                await self._send_heartbeat(listener)
            self._report_silence()
            await asyncio.sleep(self.heartbeat_interval)

    async def _send_heartbeat(self, listener: Listening) -> None:
        self._sequence += 1
        self._sent[self._sequence] = self.clock()
        try:
            await listener.notify(HEARTBEAT_CHANNEL, f"{self._name}:{self._sequence}")
        except Exception as exc:  # whatever it is, the next heartbeat tries again: never stop sending
            if not self._heartbeat_failing:  # once per outage, not four times a second
                expected = isinstance(exc, (OSError, asyncpg.PostgresError, asyncpg.InterfaceError))
                log.warning(
                    "token cache: heartbeat failed (%r); tokens are looked up until one is heard back",
                    exc,
                    exc_info=not expected,
                )
            self._heartbeat_failing = True
        else:
            if self._heartbeat_failing:
                log.info("token cache: heartbeats are sent again")
            self._heartbeat_failing = False
        while len(self._sent) > 100:  # heartbeats never heard back (a connection that died silently)
            del self._sent[min(self._sent)]

    def _report_silence(self) -> None:
        last = self._heard_at if self._heard_at is not None else self._listening_since
        silent = self._listening and self.clock() - last > SILENCE_WARNING
        if silent and not self._silence_reported:
            log.warning(
                "token cache: listening, but no heartbeat heard back for %.0f s; tokens are looked up until one is",
                self.clock() - last,
            )
        elif self._silence_reported and not silent and self._heard_at is not None:
            log.info("token cache: heartbeats are heard back again")
        self._silence_reported = silent
