"""The process's token cache (app/token_cache.py): verified tokens answered without a lookup,
forgotten on every access change in every process, and not trusted while the process cannot
prove it hears those changes."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time

import asyncpg
import httpx
import pytest

from app import token_cache
from app.domain import users
from app.listener import Listener
from app.token_cache import TokenCache
from tests.live import Server, incidents_command

VIEWER = {"query": "{ viewer { name } }"}


async def eventually(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Lookups:
    """users.viewer_for_token, counted: the lookups that reached the database."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        self.during: list = []  # run inside the next lookup, as if it happened meanwhile
        real = users.viewer_for_token

        async def counted(**kwargs):
            self.count += 1
            viewer = await real(**kwargs)
            while self.during:
                await self.during.pop(0)()
            return viewer

        monkeypatch.setattr(users, "viewer_for_token", counted)


@pytest.fixture
def lookups(monkeypatch) -> Lookups:
    return Lookups(monkeypatch)


@pytest.fixture
async def cache(database_url: str, pool: asyncpg.Pool):
    listener = Listener(database_url)
    cache = TokenCache()
    await cache.start(listener=listener)
    await listener.start()
    await eventually(lambda: cache.trusted)
    cache.listener = listener
    yield cache
    await cache.stop()
    await listener.stop()


async def add_user(pool: asyncpg.Pool, name: str, *grants: str) -> str:
    async with pool.acquire() as conn:
        return await users.add_user(conn=conn, name=name, grants=[users.parse_grant(g) for g in grants])


async def alice(pool: asyncpg.Pool, *grants: str) -> str:
    return await add_user(pool, "alice", *(grants or ("*=read",)))


async def test_a_verified_token_is_answered_without_a_lookup(cache, pool, lookups) -> None:
    token = await alice(pool, "acme=read")
    await asyncio.sleep(0.1)  # the notification of alice's creation, heard before the first lookup

    first = await cache.viewer_for_token(conn=pool, token=token)
    again = await cache.viewer_for_token(conn=pool, token=token)

    assert first is not None and first.name == "alice" and first.grants == {"acme": "read"}
    assert again == first
    assert lookups.count == 1


async def test_a_cached_viewer_cannot_be_changed_by_the_request_it_is_handed_to(cache, pool) -> None:
    token = await alice(pool, "acme=read")
    await asyncio.sleep(0.1)
    viewer = await cache.viewer_for_token(conn=pool, token=token)

    with pytest.raises(TypeError):
        viewer.grants["*"] = "write"  # type: ignore[index]

    again = await cache.viewer_for_token(conn=pool, token=token)
    assert again is viewer and dict(again.grants) == {"acme": "read"} and not again.can_write("other")


@pytest.mark.parametrize(
    "change",
    [
        lambda conn: users.revoke_tokens(conn=conn, name="alice", operator="test"),
        lambda conn: users.set_enabled(conn=conn, name="alice", enabled=False, operator="test"),
        lambda conn: users.set_permissions(conn=conn, name="alice", can_view_incidents=False, operator="test"),
        lambda conn: users.remove_grants(conn=conn, name="alice", scopes=["acme"], operator="test"),
        lambda conn: users.set_grants(conn=conn, name="alice", grants=[("acme", "write")], operator="test"),
        lambda conn: conn.execute("UPDATE api_tokens SET revoked_at = now()"),  # by hand, in SQL
    ],
    ids=["token-revoke", "user-disable", "user-set-queue", "user-revoke-grant", "user-grant", "sql"],
)
async def test_every_access_change_is_seen_by_the_next_request_after_its_notification(
    cache, pool, lookups, change
) -> None:
    token = await alice(pool, "acme=read")
    await asyncio.sleep(0.1)
    before = await cache.viewer_for_token(conn=pool, token=token)
    assert await cache.viewer_for_token(conn=pool, token=token) == before

    async with pool.acquire() as conn:
        await change(conn)
    await eventually(lambda: len(cache) == 0, timeout=1.0)  # the notification, heard

    after = await cache.viewer_for_token(conn=pool, token=token)
    assert after != before
    assert lookups.count == 2


async def test_a_lookup_that_overlaps_a_revoke_is_not_cached(cache, pool, lookups) -> None:
    token = await alice(pool)
    await asyncio.sleep(0.1)

    async def revoke_and_hear_it() -> None:
        async with pool.acquire() as conn:
            await users.revoke_tokens(conn=conn, name="alice")
        await eventually(lambda: lookups.count and cache._generation > generation, timeout=1.0)

    generation = cache._generation
    lookups.during.append(revoke_and_hear_it)  # the lookup read alice's token before the revoke
    assert await cache.viewer_for_token(conn=pool, token=token) is not None

    assert await cache.viewer_for_token(conn=pool, token=token) is None
    assert lookups.count == 2


async def test_while_the_listener_is_down_every_token_is_looked_up(cache, pool, lookups, database_url) -> None:
    token = await alice(pool)
    await asyncio.sleep(0.1)
    await cache.viewer_for_token(conn=pool, token=token)
    # This cache's own listener: the browser tests' server, on the same session-wide database,
    # has listeners of the same name (picking one by name killed theirs: the CI failure). It
    # stays down, so that trust cannot come back with a reconnect before it is looked at, and
    # pg_terminate_backend waits for the backend's exit (PostgreSQL 14's timeout argument), after
    # which no heartbeat can be heard: the trust window counts from there.
    listener = cache.listener
    listener_pid = listener._conn.get_server_pid()
    listener.dsn = "postgresql://nobody@127.0.0.1:1/none"
    assert await pool.fetchval("SELECT pg_terminate_backend($1, 5000)", listener_pid)
    gone = cache.clock()
    while cache.trusted:
        assert cache.clock() - gone < cache.trust_window, (
            f"trusted {cache.clock() - gone:.3f} s after the listener's backend exited: heard a heartbeat sent"
            f" {cache._heard_at - gone:+.3f} s from then; listening {cache._listening}, connected {listener.connected},"
            f" backend {listener._conn.get_server_pid() if listener._conn else None} (killed {listener_pid})"
        )
        await asyncio.sleep(0.01)
    assert await cache.viewer_for_token(conn=pool, token=token) is not None  # looked up, not kept
    await pool.execute("UPDATE api_tokens SET revoked_at = now()")  # no listener hears it

    assert await cache.viewer_for_token(conn=pool, token=token) is None
    assert lookups.count == 3
    listener.dsn = database_url
    await eventually(lambda: cache.trusted, timeout=20)  # reconnected, and its heartbeat heard again


async def test_a_saturated_pool_does_not_stop_the_cache(cache, pool, lookups) -> None:
    token = await alice(pool)
    await asyncio.sleep(0.1)
    await cache.viewer_for_token(conn=pool, token=token)

    # Given every connection of the pool is held by a request that takes its time
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        # Then the heartbeats, sent from the listener's own connection, still come back
        deadline = time.monotonic() + 3 * cache.trust_window
        while time.monotonic() < deadline:
            assert cache.trusted
            await asyncio.sleep(0.05)
        assert await cache.viewer_for_token(conn=held[0], token=token) is not None
        assert lookups.count == 1
    finally:
        for conn in held:
            await pool.release(conn)


class SilentListener:
    """A listener whose connection died without a word: it says it is connected, hears nothing."""

    connected = True

    def __init__(self) -> None:
        self.channels: dict = {}

    def subscribe(self, channel, callback) -> None:
        self.channels[channel] = callback

    def on_state(self, callback) -> None:
        pass

    async def notify(self, channel, payload) -> None:
        pass  # sent into the void


async def test_a_listener_that_stops_hearing_stops_the_cache_within_the_trust_window(pool, lookups) -> None:
    listener = SilentListener()
    cache = TokenCache(heartbeat_interval=0.05)
    await cache.start(listener=listener)
    try:
        token = await alice(pool)
        assert not cache.trusted  # nothing heard yet: no cache
        name = cache._name
        heard = listener.channels[token_cache.HEARTBEAT_CHANNEL]
        sequence = cache._sequence
        heard(f"{name}:{sequence}")  # one heartbeat heard, then silence
        assert cache.trusted
        await cache.viewer_for_token(conn=pool, token=token)
        await cache.viewer_for_token(conn=pool, token=token)
        assert lookups.count == 1

        await asyncio.sleep(cache.trust_window + 0.1)

        assert not cache.trusted
        await cache.viewer_for_token(conn=pool, token=token)
        assert lookups.count == 2
    finally:
        await cache.stop()


class FlakyListener(SilentListener):
    """A listener whose sends fail with an error nobody foresaw, then hear back what they send."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def notify(self, channel, payload) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("something unforeseen")
        self.channels[channel](payload)


async def test_an_unforeseen_heartbeat_failure_is_logged_once_and_the_heartbeats_go_on(caplog) -> None:
    listener = FlakyListener(failures=3)
    cache = TokenCache(heartbeat_interval=0.02)
    with caplog.at_level("WARNING", logger="app.token_cache"):
        await cache.start(listener=listener)
        try:
            await eventually(lambda: cache.trusted, timeout=2.0)
        finally:
            await cache.stop()

    failures = [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    assert len(failures) == 1
    assert "something unforeseen" in failures[0].getMessage() and failures[0].exc_info is not None


async def test_a_listener_that_hears_no_heartbeat_for_seconds_is_reported(monkeypatch, caplog) -> None:
    monkeypatch.setattr(token_cache, "SILENCE_WARNING", 0.2)
    listener = SilentListener()
    cache = TokenCache(heartbeat_interval=0.02)
    with caplog.at_level("WARNING", logger="app.token_cache"):
        await cache.start(listener=listener)
        try:
            await asyncio.sleep(0.5)
        finally:
            await cache.stop()

    silences = [r for r in caplog.records if "no heartbeat heard back" in r.getMessage()]
    assert len(silences) == 1 and silences[0].levelname == "WARNING"


async def test_a_lookup_that_started_before_the_cache_was_trusted_is_not_cached(pool, lookups) -> None:
    listener = SilentListener()
    cache = TokenCache(heartbeat_interval=0.05)
    await cache.start(listener=listener)
    try:
        token = await alice(pool)
        heard = listener.channels[token_cache.HEARTBEAT_CHANNEL]
        sequence = cache._sequence

        async def trust_returns() -> None:
            heard(f"{cache._name}:{sequence}")

        lookups.during.append(trust_returns)  # untrusted when it started: it may have read anything
        await cache.viewer_for_token(conn=pool, token=token)
        assert cache.trusted

        await cache.viewer_for_token(conn=pool, token=token)
        assert lookups.count == 2
    finally:
        await cache.stop()


async def test_the_cache_holds_at_most_max_entries_each_for_at_most_ttl(database_url, pool, lookups) -> None:
    now = [1000.0]
    listener = Listener(database_url)
    cache = TokenCache(max_entries=2, ttl=30, clock=lambda: now[0])
    tokens = [await add_user(pool, f"u{n}", "*=read") for n in range(3)]
    await cache.start(listener=listener)
    await listener.start()
    try:
        await eventually(lambda: cache._heard_at is not None)
        for token in tokens:
            await cache.viewer_for_token(conn=pool, token=token)
        assert len(cache) == 2 and lookups.count == 3
        await cache.viewer_for_token(conn=pool, token=tokens[0])  # the oldest went first
        assert lookups.count == 4

        now[0] += 31
        cache._heard_at = now[0]  # trusted (the test's clock stands still for the heartbeats)
        await cache.viewer_for_token(conn=pool, token=tokens[0])
        assert lookups.count == 5
    finally:
        await cache.stop()
        await listener.stop()


READ_BY = """
SELECT DISTINCT to_regclass(quote_ident(n.name #>> '{}'))::text AS relation
  FROM jsonb_path_query($1::jsonb, '$.**."Relation Name"') AS n(name)
"""
# pg_trigger.tgtype's bits of the events: INSERT (4), DELETE (8), UPDATE (16) and TRUNCATE (32).
EVERY_CHANGE = 4 | 8 | 16 | 32
NOTIFIED_EVENTS = """
SELECT coalesce(bit_or(t.tgtype::int), 0)
  FROM pg_trigger t
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal AND t.tgenabled IN ('O', 'A')
   AND p.prosrc LIKE '%' || $2 || '%'
"""


async def relations_without_access_notifications(conn: asyncpg.Connection) -> dict[str, int]:
    """The relations VIEWER_BY_TOKEN reads, each with the events (tgtype bits) no trigger notifies."""
    plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + users.VIEWER_BY_TOKEN, bytes(32))
    relations = [r["relation"] for r in await conn.fetch(READ_BY, plan)]
    assert {"users", "grants", "api_tokens"} <= set(relations), relations
    missing = {}
    for relation in relations:
        notified = await conn.fetchval(NOTIFIED_EVENTS, relation, token_cache.ACCESS_CHANNEL)
        if notified & EVERY_CHANGE != EVERY_CHANGE:
            missing[relation] = EVERY_CHANGE & ~notified
    return missing


async def test_every_relation_a_token_lookup_reads_notifies_every_change(pool) -> None:
    # A table the lookup starts to read must be wired to the channel, or the cache keeps answering
    # from what that table said before it changed.
    async with pool.acquire() as conn:
        assert await relations_without_access_notifications(conn) == {}


async def test_a_relation_whose_trigger_is_missing_is_found(pool) -> None:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("DROP TRIGGER grants_access_changes ON grants")
            assert await relations_without_access_notifications(conn) == {"grants": EVERY_CHANGE}
        finally:
            await transaction.rollback()  # the trigger stays


def _token_lookups(base: str, source: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    match = re.search(rf'^incident_graph_token_lookups_total{{source="{source}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_revoked_token_is_refused_by_every_process_within_one_second(database_url, tmp_path) -> None:
    servers = [Server(database_url, tmp_path / f"server-{n}.log") for n in range(2)]
    try:
        for server in servers:
            server.wait_healthy()
        add = subprocess.run(
            [*incidents_command(), "user", "add", "alice", "--grant", "*=read", "--by", "test"],
            env={**os.environ, "DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            check=True,
        )
        headers = {"Authorization": f"Bearer {add.stdout.strip().splitlines()[-1]}"}
        with httpx.Client(timeout=5) as client:
            for server in servers:  # each process verifies it once, then answers from its cache
                deadline = time.monotonic() + 10
                while _token_lookups(server.url, "cache") < 3:
                    assert time.monotonic() < deadline, server.log()
                    assert client.post(f"{server.url}/graphql", json=VIEWER, headers=headers).status_code == 200
                    time.sleep(0.02)

            subprocess.run(
                [*incidents_command(), "token", "revoke", "alice", "--by", "test"],
                env={**os.environ, "DATABASE_URL": database_url},
                check=True,
                capture_output=True,
            )
            revoked = time.monotonic()

            refused_after: dict[int, float] = {}
            while time.monotonic() - revoked < 1.5:
                for n, server in enumerate(servers):
                    status = client.post(f"{server.url}/graphql", json=VIEWER, headers=headers).status_code
                    if status == 401:
                        refused_after.setdefault(n, time.monotonic() - revoked)
                    else:
                        assert n not in refused_after, "a refused token was accepted again"
                        assert status == 200

        assert sorted(refused_after) == [0, 1]
        assert max(refused_after.values()) < 1.0, refused_after
    finally:
        for server in servers:
            server.stop()
