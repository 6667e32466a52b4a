"""The process's LISTEN connection (app/listener.py): notifications after commit, none after a
rollback, and a connection that comes back, with its LISTENs, after PostgreSQL drops it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.listener import Listener

CHANNEL = "listener_test"


async def eventually(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def listener(database_url: str):
    listener = Listener(database_url)
    yield listener
    await listener.stop()


async def test_a_committed_notify_reaches_the_callback_and_a_rolled_back_one_does_not(listener, pool) -> None:
    received: list[str] = []
    listener.subscribe(CHANNEL, received.append)
    await listener.start()
    await eventually(lambda: listener.connected)

    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT pg_notify($1, 'rolled back')", CHANNEL)
        await tx.rollback()
        async with conn.transaction():
            await conn.execute("SELECT pg_notify($1, 'committed')", CHANNEL)

    await eventually(lambda: received == ["committed"])
    await asyncio.sleep(0.2)
    assert received == ["committed"]


async def test_a_channel_subscribed_while_connected_is_listened_to_at_once(listener, pool) -> None:
    await listener.start()
    await eventually(lambda: listener.connected)
    received: list[str] = []
    listener.subscribe(CHANNEL, received.append)

    async def notify_until_received() -> None:
        while not received:
            await pool.execute("SELECT pg_notify($1, 'late')", CHANNEL)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(notify_until_received(), 10)
    assert set(received) == {"late"}


async def test_a_dropped_connection_is_reported_and_comes_back_listening(listener, pool) -> None:
    received: list[str] = []
    states: list[bool] = []
    listener.subscribe(CHANNEL, received.append)
    listener.on_state(states.append)
    await listener.start()
    await eventually(lambda: states == [True])

    # Given PostgreSQL ends the listener's backend (a restart, a failover, an admin)
    backend = listener._conn.get_server_pid()
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", backend)

    # Then consumers hear it went down and came back, and notifications flow again
    await eventually(lambda: states == [True, False, True])
    assert listener.connected
    await pool.execute("SELECT pg_notify($1, 'after reconnect')", CHANNEL)
    await eventually(lambda: received == ["after reconnect"])


async def test_a_notification_sent_on_the_listening_connection_is_heard_back(listener) -> None:
    received: list[str] = []
    listener.subscribe(CHANNEL, received.append)
    with pytest.raises(ConnectionError):
        await listener.notify(CHANNEL, "before connecting")

    await listener.start()
    await eventually(lambda: listener.connected)
    await listener.notify(CHANNEL, "to itself")

    await eventually(lambda: received == ["to itself"])


async def test_an_unreachable_database_is_retried_until_stopped() -> None:
    listener = Listener("postgresql://nobody@127.0.0.1:1/none")
    states: list[bool] = []
    listener.on_state(states.append)
    await listener.start()
    await asyncio.sleep(0.5)
    assert not listener.connected and states == []
    await listener.stop()


async def test_the_app_opens_one_listener_for_its_lifetime(settings, database_url) -> None:
    from app.server import create_app

    async def listeners() -> int:
        # Other servers on the test database (the browser tests') have theirs: count the difference.
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'incident-graph-listener' AND datname = current_database()"
            )
        finally:
            await conn.close()

    before = await listeners()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        listener = app.state.listener
        await eventually(lambda: listener.connected)
        assert await listeners() == before + 1
    assert not listener.connected
    await eventually_async(listeners, before)


async def eventually_async(read, expected, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{value} != {expected}"
        await asyncio.sleep(0.05)
