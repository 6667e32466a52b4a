"""Live updates in one server process: the feed that reads the change stream once for every
subscription of the process, and the subscriptions it fans changes out to.

Nothing here is needed by another process: the stream is the activity log (app/domain/changes.py),
each process reads it from its own position, woken by the listener (app/listener.py) when a
transaction that wrote the log commits. A subscription's resume point is the cursor its client
holds, valid on every process.

- The feed never waits for a subscriber: each subscription has a bounded buffer, and one that
  falls LIVE_BUFFER changes behind is ended (SUBSCRIBER_TOO_SLOW), resumable from the client's
  last cursor. Mutations never wait for the feed either: NOTIFY is sent at their commit.
- Notifications missed while the listener reconnects cost nothing: the feed reads from its
  position in the log, whatever woke it; it also reads every POLL_SECONDS without a wake-up.
- A change of access (grants, tokens, users) wakes every subscription to check its viewer again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections import deque
from collections.abc import Callable

import asyncpg

from app import metrics
from app.domain import changes, incidents, models
from app.domain.viewers import Viewer
from app.listener import Listener

log = logging.getLogger("app.live")

LOG_CHANNEL = "incident_graph_log"
ACCESS_CHANNEL = "incident_graph_access"
POLL_SECONDS = 2.0  # a read without a wake-up: a safety net, never the way changes normally arrive
# While a running transaction holds committed changes back, a read again soon, then less and less
# often while it stays: its end wakes the feed anyway when it wrote the log (its NOTIFY), and so
# does every other commit; the reads cover a transaction that ends without writing it.
HELD_BACK_SECONDS = 0.025
HELD_BACK_MAX_SECONDS = 0.4
# At most one read of the stream per READ_GAP_SECONDS: under a steady flow of commits (hundreds a
# second), each read takes the commits of its gap at once instead of one read per commit. Each read
# is three statements in this process and on the database, where they compete with the writes
# themselves; the gap adds at most its length to the time from commit to subscriber.
READ_GAP_SECONDS = 0.02
RETRY_SECONDS = 1.0  # after a failed read
# Reads every incident, for the feed's one read of each change: every subscription then applies
# its own viewer's rules to that row (incidents.is_visible, the fields' rules) at delivery.
_READS_ALL = Viewer(id=0, name="live", can_view_incidents=True, can_ingest=False, grants={"*": "read"})


@dataclasses.dataclass(frozen=True)
class Read:
    """A change with the incident's row and the entries, as they were read once for every
    subscription of the process right after the change committed."""

    change: changes.Change
    incident: models.Incident | None
    entries: list[models.ActivityEntry]
    # The other incidents the entries name (where alerts came from or went), read with the incident:
    # rendering the entries for a viewer reads them (is each one visible to them?).
    related: dict[int, models.Incident] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    # The API layer's renderings of this change, one per group of subscriptions that render it
    # alike (app/api/change_renders.py): they live as long as a subscription holds the change.
    renders: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)


class Ended(Exception):
    """A subscription ended by the server: `code` says why, `retryable` whether to resume."""

    def __init__(self, code: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


TOO_SLOW = (
    "SUBSCRIBER_TOO_SLOW",
    "The subscription fell too far behind and was ended: subscribe again with the cursor of the last change received.",
)
SHUTTING_DOWN = (
    "SERVER_SHUTTING_DOWN",
    "The server is shutting down: subscribe again (another server process "
    "answers) with the cursor of the last change received.",
)


class Subscription:
    """One open incidentChanges: the changes the feed gave it, not yet delivered."""

    def __init__(self, feed: Feed, incident_ids: frozenset[int] | None, buffer: int, start_xact: int) -> None:
        self.feed = feed
        self.incident_ids = incident_ids
        # Where its live changes start: the stream's horizon when it opened (or the feed's position,
        # when that is further); the feed's changes below it committed before and are not offered.
        self.start_xact = start_xact
        self._buffer = buffer
        self._pending: deque[Read] = deque()
        self._wake = asyncio.Event()
        self.ended: Ended | None = None
        self.access_changed = False

    def offer(self, change: Read) -> None:
        if self.ended is not None or change.change.position.xact < self.start_xact:
            return
        if len(self._pending) >= self._buffer:
            self._pending.clear()
            self.end(Ended(*TOO_SLOW, retryable=True))
            return
        self._pending.append(change)
        self._wake.set()

    def end(self, reason: Ended) -> None:
        self.ended = reason
        self._wake.set()

    def access_may_have_changed(self) -> None:
        self.access_changed = True
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        """Until a change is pending, the subscription ended, access changed, or timeout passed."""
        if self._pending or self.ended is not None or self.access_changed:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    def take(self) -> Read | None:
        """The next pending change; raises Ended when the server ended the subscription."""
        if self.ended is not None:
            raise self.ended
        return self._pending.popleft() if self._pending else None

    def pending_changes(self):
        """The changes pending, oldest first (not taken)."""
        return iter(self._pending)

    @property
    def pending(self) -> int:
        return len(self._pending)


class SubscriptionLimit(Exception):
    """The process holds as many subscriptions as it may (LIVE_MAX_SUBSCRIPTIONS)."""


class Feed:
    """The process's reader of the change stream and its subscriptions."""

    def __init__(self, pool: asyncpg.Pool, listener: Listener, *, max_subscriptions: int, buffer: int) -> None:
        self.pool = pool
        self.listener = listener
        self.max_subscriptions = max_subscriptions
        self.buffer = buffer
        self.position: int | None = None  # every transaction below it has been read
        self._by_incident: dict[int, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self._open: set[Subscription] = set()  # a set: a subscription of no incident is counted too
        self._access_watchers: list[Callable[[], None]] = []  # WebSockets, to check their token
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.shutting_down = False

    @property
    def subscriptions(self) -> int:
        return len(self._open)

    async def start(self) -> None:
        self.listener.subscribe(LOG_CHANNEL, lambda _payload: self._wake.set())
        self.listener.subscribe(ACCESS_CHANNEL, lambda _payload: self._access_changed())
        self.listener.on_state(self._listener_state)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="live-feed")
        _end_streams_on_signal(self)

    async def stop(self) -> None:
        self.shut_down()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def shut_down(self) -> None:
        """End every subscription with a resumable reason; refuse new ones."""
        if self.shutting_down:
            return
        self.shutting_down = True
        for sub in self._all():
            sub.end(Ended(*SHUTTING_DOWN, retryable=True))

    def open(self, incident_ids: frozenset[int] | None, since: int = 0) -> Subscription:
        """A new subscription, given every change of transactions from `since` on (the stream's
        horizon when the caller asked: every transaction below it had ended), or from the feed's
        position when that is further."""
        if self.shutting_down:
            raise Ended(*SHUTTING_DOWN, retryable=True)
        if len(self._open) >= self.max_subscriptions:
            raise SubscriptionLimit
        if self.position is None:
            raise Ended("LIVE_UNAVAILABLE", "Live updates are starting: retry shortly.", retryable=True)
        sub = Subscription(self, incident_ids, self.buffer, max(self.position, since))
        if incident_ids is None:
            self._everything.add(sub)
        else:
            for n in incident_ids:
                self._by_incident.setdefault(n, set()).add(sub)
        self._open.add(sub)
        return sub

    def close(self, sub: Subscription) -> None:
        self._open.discard(sub)
        if sub.incident_ids is None:
            self._everything.discard(sub)
            return
        for n in sub.incident_ids:
            subs = self._by_incident.get(n)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_incident[n]

    def _all(self) -> set[Subscription]:
        return self._everything.union(*self._by_incident.values())

    def watch_access(self, callback: Callable[[], None]) -> None:
        """Call callback() at every change of access (and when notifications may have been lost)."""
        self._access_watchers.append(callback)

    def unwatch_access(self, callback: Callable[[], None]) -> None:
        self._access_watchers.remove(callback)

    def _access_changed(self) -> None:
        for sub in self._all():
            sub.access_may_have_changed()
        for callback in list(self._access_watchers):
            callback()

    def _listener_state(self, connected: bool) -> None:
        if connected:
            # Notifications sent while it was down are lost: read the log, and check every viewer.
            self._wake.set()
            self._access_changed()

    async def _run(self) -> None:
        """The reader, started again after anything unexpected (a bug would otherwise end live
        updates in this process, unseen until shutdown): it resumes from its position, so what it
        had not delivered is read again."""
        while True:
            try:
                await self._read()
            except Exception:
                metrics.LIVE_READER_FAILURES.inc()
                log.exception("live: the change stream's reader failed; starting it again in %g s", RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def _read(self) -> None:
        while self.position is None:
            try:
                self.position = await changes.horizon(conn=self.pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("live: cannot read the stream's position (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
        wait = POLL_SECONDS
        held_back = HELD_BACK_SECONDS
        loop = asyncio.get_running_loop()
        read_at = loop.time() - READ_GAP_SECONDS
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            if (gap := read_at + READ_GAP_SECONDS - loop.time()) > 0:
                await asyncio.sleep(gap)  # the commits of the gap, in one read
            read_at = loop.time()
            self._wake.clear()
            wait = POLL_SECONDS
            if not self._open:
                # Nobody listens: move on to the horizon without reading the log (one statement).
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                    horizon = await changes.horizon(conn=self.pool)
                    if not self._open:  # one opened meanwhile starts from the old position: nothing skipped
                        self.position = max(self.position, horizon)
                continue
            try:
                read = await changes.read_from(conn=self.pool, xact=self.position)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("live: reading the change stream failed (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()
                continue
            try:
                delivered: list[Read] = []
                fetched: set[changes.Change] = set()
                # A subscription opened while rows were read may want changes of this read too.
                while todo := [c for c in read.changes if c not in fetched and self._wanted(c)]:
                    delivered += await self._with_rows(todo, read.entries)
                    fetched.update(todo)
                delivered.sort(key=lambda item: item.change.position)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("live: reading the changes' incidents failed (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()
                continue
            moved = read.next_xact > self.position
            for item in delivered:
                self._dispatch(item)
            self.position = read.next_xact  # after: a dispatch that raised is read again
            if read.more:
                held_back = HELD_BACK_SECONDS if moved else min(held_back * 2, HELD_BACK_MAX_SECONDS)
                wait = held_back

    def _wanted(self, change: changes.Change) -> bool:
        return bool(self._everything) or change.incident_id in self._by_incident

    async def _with_rows(self, wanted: list[changes.Change], by_id: dict) -> list[Read]:
        """The changes with their entries (read with them) and the rows of their incidents and of
        the other incidents the entries name: one statement for a whole batch."""
        if not wanted:
            return []
        entries = {n: changes.entry(by_id[n]) for c in wanted for n in c.entry_ids if n in by_id}
        named = {e.other_incident_id for e in entries.values() if e.other_incident_id is not None}
        found = await incidents.get_incidents(
            conn=self.pool, viewer=_READS_ALL, ids=list({c.incident_id for c in wanted} | named)
        )
        reads = []
        for c in wanted:
            own = [entries[n] for n in c.entry_ids if n in entries]
            related = {e.other_incident_id: found[e.other_incident_id] for e in own if e.other_incident_id in found}
            reads.append(Read(c, found.get(c.incident_id), own, related=related))
        return reads

    def _dispatch(self, item: Read) -> None:
        for sub in self._everything:
            sub.offer(item)
        for sub in self._by_incident.get(item.change.incident_id, ()):
            sub.offer(item)


def _end_streams_on_signal(feed: Feed) -> None:
    """On SIGTERM or SIGINT, end every subscription before the server waits for its connections
    to close: an open event stream would otherwise hold the shutdown until its timeout."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        server = getattr(previous, "__self__", None)
        if not callable(previous) or not type(server).__module__.startswith("uvicorn"):
            continue  # not under uvicorn (tests): leave the handler alone

        def handler(sig, frame, previous: Callable = previous) -> None:
            loop.call_soon_threadsafe(feed.shut_down)
            previous(sig, frame)

        signal.signal(signum, handler)
