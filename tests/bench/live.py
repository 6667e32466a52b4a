"""Live updates' measurements (issue 13), run by `python -m tests.bench.run live DATABASE_URL`.

Two `incidents serve` processes of one worker each (the 2 workers), A and B, on the database:
1. the 16 movers (moves.lua, through A) with no subscription open: their rate;
2. LIVE_SUBSCRIPTIONS subscriptions opened over graphql-transport-ws, half on each process, mixed:
   LIVE_QUEUE_SUBSCRIPTIONS follow the whole queue, the others one random incident each; the
   servers' RSS before and after gives the memory per open subscription;
3. the movers again, with those open, while a probe moves one alert (not the movers') back and
   forth between two incidents through A every PROBE_INTERVAL seconds and a subscriber on B
   follows those incidents: the time from sending the probe's move to its change arriving on B.
   That is an upper bound of commit-to-client (the move's own time included), its floor is the
   probe's move alone (its HTTP answer), printed beside it. Every other probe move is made by
   this process itself, through the domain in a transaction of its own (the same statements as
   A's): the time from its COMMIT returning to the change arriving on B is commit-to-client.

`python -m tests.bench.live DATABASE_URL` measures the server's CPU time per delivered event
instead (cpu_per_event): comparable across runs on a busy machine, where latencies are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import random
import threading
import time
from dataclasses import dataclass, field

import asyncpg
import httpx
import psutil
import websockets

from app import db
from app.domain import linking
from app.domain.ids import ALERT, INCIDENT, typed_id
from app.domain.viewers import Viewer

SUBSCRIPTIONS = int(os.environ.get("LIVE_SUBSCRIPTIONS", "1000"))
QUEUE_SUBSCRIPTIONS = int(os.environ.get("LIVE_QUEUE_SUBSCRIPTIONS", "20"))
PER_CONNECTION = 10  # subscriptions multiplexed on one WebSocket, as a browser tab's client does
PROBE_INTERVAL = 0.2

CHANGES = """
subscription($ids: [ID!]) {
  incidentChanges(incidentIds: $ids) { cursor incident { id alertCount severity updatedAt } entries { kind message } }
}
"""
LINK = """
mutation($ids: [ID!]!, $to: ID!) {
  linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: "bench probe") { errors { code } }
}
"""


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            total += sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
        except psutil.Error:
            pass
    return total / 2**20


@dataclass
class Subscribers:
    """Open subscriptions on WebSockets, counting what they receive, in a thread of their own."""

    events: int = 0
    ended: dict[str, int] = field(default_factory=dict)
    probe_arrivals: list[float] = field(default_factory=list)
    commit_to_event: list[float] = field(default_factory=list)  # ms, of the probe's own commits
    probe_event: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    open_count: int = 0
    failed: str | None = None  # why the load's subscriptions ended before they were stopped


async def _connection(url: str, token: str, ops: list[dict], subs: Subscribers, probe: bool = False) -> None:
    """One WebSocket with these subscriptions, counting what arrives until subs.stop. A `next`
    without errors is counted from its text: parsing every event would make this client, not the
    server, what the figures measure."""
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for n, variables in enumerate(ops):
            payload = {"query": CHANGES, "variables": variables}
            await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": payload}))
        subs.open_count += len(ops)
        async for raw in ws:
            if '"type":"next"' in raw[:40] and '"errors":[' not in raw:
                if probe:
                    subs.probe_arrivals.append(time.perf_counter())
                    subs.probe_event.set()
                subs.events += 1
                continue
            message = json.loads(raw)
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] == "next":
                errors = message["payload"].get("errors")
                if errors:
                    code = errors[0].get("extensions", {}).get("code", "?")
                    subs.ended[code] = subs.ended.get(code, 0) + 1


async def _until(stop, tasks: list[asyncio.Task]) -> None:
    """Until stop is set (a threading or multiprocessing Event); then the connections close."""
    try:
        while not stop.is_set():
            await asyncio.sleep(0.1)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception():
                    raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _load(ws_a: str, ws_b: str, token: str, incidents: list[int], opened, stop, results) -> None:
    """The load's subscriptions, in a process of their own (so that the probe's subscriber, in the
    bench's process, does not wait behind them): half on each server; counts into `results`."""
    subs = Subscribers()

    async def main() -> None:
        rng = random.Random(13)
        ops: list[dict] = [{} for _ in range(QUEUE_SUBSCRIPTIONS)]
        ops += [{"ids": [typed_id(INCIDENT, rng.choice(incidents))]} for _ in range(SUBSCRIPTIONS - len(ops))]
        groups = [ops[i : i + PER_CONNECTION] for i in range(0, len(ops), PER_CONNECTION)]
        tasks = [
            asyncio.create_task(_connection(ws_a if n % 2 else ws_b, token, group, subs))
            for n, group in enumerate(groups)
        ]
        while subs.open_count < len(ops):
            await asyncio.sleep(0.1)
            for task in tasks:
                if task.done() and task.exception():
                    raise task.exception()
        opened.set()
        await _until(stop, tasks)

    error = None
    try:
        asyncio.run(main())
    except BaseException as exc:
        error = repr(exc)
        raise
    finally:
        results.put({"events": subs.events, "ended": subs.ended, "error": error})


def run_subscribers(ws_a: str, ws_b: str, token: str, incidents: list[int], probe_ids: list[int], subs: Subscribers):
    """Opens the load's subscriptions (a process of their own, half on each server) and the probe's
    on B (here); runs until subs.stop, then adds the load's counts to subs."""
    spawn = multiprocessing.get_context("spawn")
    opened, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
    load = spawn.Process(target=_load, args=(ws_a, ws_b, token, incidents, opened, stop, results), daemon=True)
    load.start()

    async def main() -> None:
        probe_ops = [{"ids": [typed_id(INCIDENT, i) for i in probe_ids]}]
        probe = asyncio.create_task(_connection(ws_b, token, probe_ops, subs, probe=True))
        while not (opened.is_set() and subs.open_count >= 1):
            await asyncio.sleep(0.1)
            if probe.done() and probe.exception():
                raise probe.exception()
            if not load.is_alive():
                raise RuntimeError(f"live: the subscribers' process ended: {results.get(timeout=5)['error']}")
        await asyncio.sleep(2)  # the servers hold them all
        subs.opened.set()
        await _until(subs.stop, [probe])

    try:
        asyncio.run(main())
    finally:
        stop.set()
        try:
            counts = results.get(timeout=60)
        except queue.Empty:
            counts = {"events": 0, "ended": {}, "error": "the subscribers' process reported nothing"}
        load.join(10)
        subs.events += counts["events"]
        for code, n in counts["ended"].items():
            subs.ended[code] = subs.ended.get(code, 0) + n
        if counts["error"] is not None:
            subs.failed = counts["error"]


async def probe_pair(db_url: str, avoid_alerts: list[int], avoid_incidents: list[int]) -> tuple[int, int, int]:
    """An alert the movers never move, its incident, and another incident they never touch."""
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            "SELECT a.id, a.incident_id FROM alerts a JOIN incidents i ON i.id = a.incident_id"
            " WHERE a.id <> ALL($1::bigint[]) AND i.id <> ALL($2::bigint[]) AND i.status IN ('active', 'in_progress')"
            " ORDER BY a.id DESC LIMIT 1",
            avoid_alerts,
            avoid_incidents,
        )
        other = await conn.fetchval(
            "SELECT id FROM incidents WHERE id <> ALL($1::bigint[]) AND id <> $2 AND status IN ('active', 'in_progress')"
            " ORDER BY id DESC LIMIT 1",
            avoid_incidents,
            row["incident_id"],
        )
        return row["id"], row["incident_id"], other
    finally:
        await conn.close()


def probe_moves(
    api: str, token: str, alert: int, incidents: tuple[int, int], subs: Subscribers, seconds: float, db_url: str = ""
):
    """Moves the probe alert back and forth; returns (send-to-event latencies, move latencies) in ms
    of its moves through A. With db_url every other move commits here (subs.commit_to_event)."""
    to_event, answered = [], []
    deadline = time.monotonic() + seconds
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(_connect(db_url)) if db_url else None
    try:
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            side, n = 1, 0
            while time.monotonic() < deadline:
                subs.probe_event.clear()
                seen = len(subs.probe_arrivals)
                if conn is not None and n % 2:
                    committed = loop.run_until_complete(_commit_move(conn, alert, incidents[side]))
                    if subs.probe_event.wait(5) and len(subs.probe_arrivals) > seen:
                        subs.commit_to_event.append((subs.probe_arrivals[seen] - committed) * 1000)
                else:
                    sent = time.perf_counter()
                    variables = {"ids": [typed_id(ALERT, alert)], "to": typed_id(INCIDENT, incidents[side])}
                    response = client.post(f"{api}/graphql", json={"query": LINK, "variables": variables})
                    answered.append((time.perf_counter() - sent) * 1000)
                    assert response.status_code == 200 and not response.json()["data"]["linkAlerts"]["errors"], (
                        response.text
                    )
                    if subs.probe_event.wait(5) and len(subs.probe_arrivals) > seen:
                        to_event.append((subs.probe_arrivals[seen] - sent) * 1000)
                side, n = 1 - side, n + 1
                time.sleep(PROBE_INTERVAL)
    finally:
        if conn is not None:
            loop.run_until_complete(conn.close())
        loop.close()
    return to_event, answered


_PROBE = Viewer(id=0, name="bench probe", can_view_incidents=True, can_ingest=False, grants={"*": "write"})


async def _connect(db_url: str) -> asyncpg.Connection:
    """A connection like the app pool's: its settings and its session's functions (the move)."""
    conn = await asyncpg.connect(db_url, server_settings=db.SERVER_SETTINGS)
    await db.install_session_functions(conn)
    return conn


async def _commit_move(conn: asyncpg.Connection, alert: int, to: int) -> float:
    """The probe's move, committed on this connection; the time its COMMIT returned."""
    target = linking.Target(existing_incident_id=typed_id(INCIDENT, to))
    async with conn.transaction():
        await linking.link_alerts(
            conn=conn, viewer=_PROBE, alert_ids=[typed_id(ALERT, alert)], target=target, comment="bench probe"
        )
    return time.perf_counter()


def cpu_per_event(db_url: str, workdir, queue_subscriptions: int = 20, moves: int = 100) -> dict:
    """One server process with queue_subscriptions queue-wide subscriptions (CHANGES, one token);
    `moves` probe moves committed here one after another (two changes each): the server's CPU time
    from the first move until every subscriber had every event, per event. CPU time, not waiting:
    comparable across runs on a busy machine, where latencies are not."""
    from tests.bench.run import make_token
    from tests.live import Server

    token = asyncio.run(make_token(db_url))
    alert, home, other = asyncio.run(probe_pair(db_url, [], []))
    server = Server(db_url, workdir / "server-cpu.log", env={"WEB_CONCURRENCY": "1", "LIVE_BUFFER": "100000"})
    try:
        server.wait_healthy()
        return asyncio.run(_cpu_per_event(server, db_url, token, alert, (home, other), queue_subscriptions, moves))
    finally:
        server.stop()


async def _cpu_per_event(server, db_url: str, token: str, alert: int, pair, subscriptions: int, moves: int) -> dict:
    url = server.url.replace("http://", "ws://") + "/graphql"
    received = 0
    expected = subscriptions * 2 * moves
    everything = asyncio.Event()
    sockets = []

    async def read(ws) -> None:
        nonlocal received
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "next" and not message["payload"].get("errors"):
                received += 1
                if received >= expected:
                    everything.set()
            elif message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))

    for first in range(0, subscriptions, PER_CONNECTION):
        ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        await ws.recv()
        for n in range(min(PER_CONNECTION, subscriptions - first)):
            payload = {"query": CHANGES, "variables": {}}
            await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": payload}))
        sockets.append(ws)
    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    await asyncio.sleep(2)  # the server holds them all
    process = psutil.Process(server.proc.pid)
    cpu_before = sum(process.cpu_times()[:2])
    started = time.monotonic()
    conn = await _connect(db_url)
    try:
        for n in range(moves):
            await _commit_move(conn, alert, pair[(n + 1) % 2])
    finally:
        await conn.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(1.0, 120 - (time.monotonic() - started))):
            await everything.wait()
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    return {
        "live_cpu_subscriptions": subscriptions,
        "live_cpu_events": received,
        "live_cpu_events_expected": expected,
        "live_cpu_seconds": round(cpu, 2),
        "live_cpu_ms_per_event": round(cpu * 1000 / max(1, received), 3),
    }


if __name__ == "__main__":
    import sys
    import tempfile
    from pathlib import Path

    from app.config import ROOT

    print(json.dumps(cpu_per_event(sys.argv[1], Path(tempfile.mkdtemp(prefix="bench-live-cpu-", dir=ROOT / ".data")))))
