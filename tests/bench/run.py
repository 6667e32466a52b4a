"""The benchmark: `make bench` (1,000,000 incidents) or `make bench SCALE=small` (100,000).

    python -m tests.bench.run [full|small]
    python -m tests.bench.run merges DATABASE_URL   # the merges' measurements alone, on any database
    python -m tests.bench.run tail DATABASE_URL     # the typeahead's tail alone (1 connection, open loop)
    python -m tests.bench.run live DATABASE_URL     # live updates' measurements alone (tests/bench/live.py)
    python -m tests.bench.run searching DATABASE_URL  # evidence typed at 1 connection while 16 movers run

Seeds its own database when needed (tests/bench/database.py), starts the real server
(`incidents serve`) and the floor (tests/bench/floor.py) under the same uvicorn settings, and
drives them from this machine's loopback with wrk (bodies.lua, moves.lua) and, for the
sequential measurements, a Python client. Every loop is bounded in count and time. It prints a
table, and as its last line one JSON object with the figures.

The machine has 2 cores, shared by the server, PostgreSQL and the load generator: the figures
are for that, and are compared with the floor measured in the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
import psutil
import uvloop

from app.config import ROOT
from app.domain.ids import ALERT, INCIDENT, typed_id
from tests.bench import database, merges, pgactivity
from tests.bench import inputs as bench_inputs
from tests.bench import live as bench_live
from tests.bench import postgraphile as bench_postgraphile
from tests.documents import DETAIL
from tests.live import Server, free_port

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scale:
    incidents: int
    seconds: float  # each wrk measurement
    warmup: float  # wrk warm-up before each measurement
    link_runs: dict[int, int]
    ingest_batches: int
    # Merges of 10 incidents of 1,000 alerts, and their reverts, after a warm-up: 20 at the full
    # scale, since a p95 of 6 (until 2026-12-06) was their slowest, which swung by 26% between
    # two runs of one seed whose medians differed by 10%.
    merge_runs: int
    tail_passes: int  # passes over the mix at one connection, after a warm-up pass


SCALES = {
    "full": Scale(
        1_000_000, seconds=15, warmup=3, link_runs={100: 40, 1000: 16}, ingest_batches=60, merge_runs=20, tail_passes=10
    ),
    "small": Scale(
        100_000, seconds=6, warmup=2, link_runs={100: 10, 1000: 4}, ingest_batches=4, merge_runs=3, tail_passes=5
    ),
}

# Worker processes of the server and of the floor alike: one per core (`incidents serve --workers`).
WORKERS = os.cpu_count() or 1
# PostGraphile's Node processes: one served more than two did in issue 19's measurements.
POSTGRAPHILE_PROCESSES = int(os.environ.get("BENCH_POSTGRAPHILE_PROCESSES", "1"))

# What the final JSON line keeps of each phase's account (pgactivity.Window.as_json).
PHASE_KEYS = (
    "checkpoints",
    "wal_mb",
    "autovacuum",
    "vacuum_seconds",
    "gin_merges",
    "cpu_idle_pct",
    "cpu_iowait_pct",
    "cpu_steal_pct",
)
TYPEAHEAD = (
    "query Typeahead($q: String!) { incidents(filter: {search: $q}, first: 10) { edges { node {"
    " id name status severity lastActivityAt alertCount"
    " alerts(first: 5) { edges { node { id title severity detectedAt } } } } } } }"
)

# Issue 15: the queue's sorts, first pages and pages deep in the list (after 10 pages), open
# incidents and all, as an analyst working a shift reads them.
QUEUE_SORTS = ("LAST_ACTIVITY", "SEVERITY", "ALERT_COUNT", "CREATED")
QUEUE = (
    "query Queue($sort: IncidentSort!, $filter: IncidentFilter, $after: String) {"
    " incidents(sort: $sort, filter: $filter, first: 25, after: $after) {"
    " edges { node { id number name status severity alertCount lastActivityAt assignedTo classification } }"
    " pageInfo { endCursor hasNextPage } } }"
)
QUEUE_FILTERS = (None, {"status": ["ACTIVE", "IN_PROGRESS"]}, {"unassigned": True, "status": ["ACTIVE"]})


def queue_bodies(client: httpx.Client, base: str, token: str, sort: str, pages: int = 10) -> list[dict]:
    """The queue's first page under each filter, and the pages after it, `pages` deep."""
    bodies = []
    for flt in QUEUE_FILTERS:
        after = None
        for _ in range(pages):
            body = {"query": QUEUE, "variables": {"sort": sort, "filter": flt, "after": after}}
            bodies.append(body)
            response = client.post(f"{base}/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
            page = response.json()["data"]["incidents"]["pageInfo"]
            if not page["hasNextPage"]:
                break
            after = page["endCursor"]
    return bodies


LINK = (
    "mutation($ids: [ID!]!, $to: ID!) { linkAlerts(alertIds: $ids, target: {existingIncidentId: $to},"
    ' comment: "bench: consolidating") { targetIncident { id alertCount } sourceIncidents { id status }'
    " alerts { id } logEntries { id kind } move { id } errors { code message } } }"
)
INGEST = (
    "mutation($alerts: [AlertInput!]!) { ingestAlerts(alerts: $alerts) {"
    " alerts { id incident { id } } errors { code message } } }"
)
JSON_KEYS = [
    "typeahead_cheap_rps",
    "typeahead_cheap_floor_rps",
    "typeahead_mix_rps",
    "typeahead_mix_floor_rps",
    "typeahead_mix_anchor_rps",
    "typeahead_cheap_postgraphile_rps",
    "typeahead_mix_postgraphile_rps",
    "typeahead_mix_p99_ms",
    "typeahead_cheap_persisted_rps",
    "typeahead_mix_persisted_rps",
    "typeahead_mix_persisted_p99_ms",
    "typeahead_1conn_p99_ms",
    "typeahead_1conn_max_ms",
    "typeahead_1conn_by_class",
    "typeahead_1conn_floor_p99_ms",
    "typeahead_open_loop_per_s",
    "typeahead_open_loop_p99_ms",
    "typeahead_open_loop_floor_p99_ms",
    "typeahead_open_loop_anchor_p99_ms",
    "typeahead_open_loop_achieved_per_s",
    "small_mix_vs_anchor",
    "small_name_mix_vs_anchor",
    "evidence_mix_rps",
    "evidence_mix_anchor_rps",
    "link_100_p95_ms",
    "link_1000_p95_ms",
    "moves_per_s",
    "move_errors",
    "merge_10x1000_p95_ms",
    "revert_merge_10x1000_p95_ms",
    "moves_with_merges_per_s",
    "moves_without_merges_per_s",
    "move_errors_with_merges",
    "merges_beside_moves",
    "detail_p95_ms",
    "detail_sql_statements",
    *(f"queue_{sort.lower()}_p95_ms" for sort in QUEUE_SORTS),
    "ingest_alerts_per_s",
    "seed_seconds",
    "server_rss_mb",
    "live_commit_to_event_p50_ms",
    "live_commit_to_event_p95_ms",
    "live_moves_without_subscribers_per_s",
    "live_moves_with_subscribers_per_s",
    "live_ended",
    "live_kb_per_subscription",
    "incidents",
    "alerts",
    "postgres_during",
]


def link_request(alerts: list[int], target: int) -> tuple[str, dict]:
    """A linkAlerts of these alerts into this incident, as timed_mutations sends it."""
    return LINK, {"ids": [typed_id(ALERT, a) for a in alerts], "to": typed_id(INCIDENT, target)}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


class RssSampler:
    """The largest resident set of a process and its children, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def wrk(url: str, script: str, *, seconds: float, connections: int, threads: int = 1, env: dict[str, str]) -> dict:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / script),
        url,
    ]
    result = subprocess.run(
        command,
        env={**os.environ, "BENCH_LUA_DIR": str(HERE), **env},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stderr}\n{result.stdout}")
    last = [line for line in result.stdout.splitlines() if line.startswith("{")][-1]
    out = json.loads(last)
    out["rps"] = out["requests"] / out["seconds"]
    return out


def bodies_file(directory: Path, name: str, bodies: list[dict]) -> str:
    path = directory / name
    path.write_bytes(b"\n".join(orjson.dumps(b) for b in bodies) + b"\n")
    return str(path)


def load(
    url: str,
    bodies: str,
    *,
    path: str,
    token: str,
    seconds: float,
    warmup: float,
    connections: int = 8,
    check: bool = True,
) -> dict:
    env = {"BENCH_BODIES": bodies, "BENCH_PATH": path, "BENCH_TOKEN": token, "BENCH_CHECK": "1" if check else "0"}
    if warmup:
        wrk(url, "bodies.lua", seconds=warmup, connections=connections, env=env)
    return wrk(url, "bodies.lua", seconds=seconds, connections=connections, env=env)


def load_side_by_side(
    targets: dict[str, tuple[str, str, str, str]],
    *,
    seconds: float,
    warmup: float,
    rounds: int = 3,
    connections: int = 8,
) -> dict[str, dict]:
    """Each target (url, bodies, path, bearer token) in turn for seconds/rounds, `rounds` times over, so that
    whatever else the machine does in that minute weighs on all of them alike.

    Requests per second are over all rounds; p50 and p95 are the rounds' weighted by requests
    (near enough), p99 and max the worst round's (an upper bound of the whole's).
    """
    envs = {
        name: {"BENCH_BODIES": bodies, "BENCH_PATH": path, "BENCH_TOKEN": token, "BENCH_CHECK": "1"}
        for name, (url, bodies, path, token) in targets.items()
    }
    for name, (url, *_) in targets.items():
        wrk(url, "bodies.lua", seconds=warmup, connections=connections, env=envs[name])
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (url, *_) in targets.items():
            runs[name].append(
                wrk(url, "bodies.lua", seconds=max(1, round(seconds / rounds)), connections=connections, env=envs[name])
            )
    merged = {}
    for name, parts in runs.items():
        requests = sum(r["requests"] for r in parts)
        merged[name] = {
            "requests": requests,
            "seconds": sum(r["seconds"] for r in parts),
            "p50_ms": sum(r["p50_ms"] * r["requests"] for r in parts) / requests,
            "p95_ms": sum(r["p95_ms"] * r["requests"] for r in parts) / requests,
            "p99_ms": max(r["p99_ms"] for r in parts),
            "max_ms": max(r["max_ms"] for r in parts),
            **{k: sum(r[k] for r in parts) for k in ("errors", "socket_errors", "non_2xx")},
        }
        merged[name]["rps"] = requests / merged[name]["seconds"]
    return merged


# The tail (issue 16): one connection over the whole mix, and an open loop at a fixed rate.
ONE_CONNECTION_P99_MS, CLASS_P99_MS = 15, 50
OPEN_LOOP_SHARE = 0.6  # of the floor's best requests per second on the mix in this run
OPEN_LOOP_P99_RATIO = 1.5  # ours at most this times the floor's p99 at that rate
OPEN_LOOP_IN_FLIGHT = 32  # connections, and requests sent and unanswered, per target


def one_connection(
    base: str,
    token: str,
    bodies: list[dict],
    passes: int,
    *,
    warm_up: bool = True,
    until: Callable[[], bool] | None = None,
    path: str = "/graphql",
) -> tuple[list[list[float]], int]:
    """The bodies in turn over one keep-alive connection to `path`, one warm-up pass (unless not
    `warm_up`) and then `passes` passes, or until `until()` holds before a request: each body's
    latencies (ms) and the errors (not HTTP 200, or an "errors" entry, as bodies.lua counts
    them). http.client, so that the client adds little to what it measures."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    encoded = [orjson.dumps(b) for b in bodies]
    latencies: list[list[float]] = [[] for _ in bodies]
    errors = 0
    try:
        for n in range(0 if warm_up else 1, passes + 1):
            for i, body in enumerate(encoded):
                if until is not None and until():
                    return latencies, errors
                started = time.perf_counter()
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                answer = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if n:
                    latencies[i].append(elapsed)
                errors += response.status != 200 or b'"errors":[{' in answer
    finally:
        conn.close()
    return latencies, errors


def tail_by_class(inputs: list[str], classes: list[str], latencies: list[list[float]]) -> dict[str, dict]:
    """p99 and max of each input class's requests, and of all of them (the key "all"), with the
    input that took longest."""
    grouped: dict[str, list[tuple[float, str]]] = {}
    for q, name, values in zip(inputs, classes, latencies, strict=True):
        grouped.setdefault(name, []).extend((v, q) for v in values)
    grouped["all"] = [pair for pairs in list(grouped.values()) for pair in pairs]
    out = {}
    for name, pairs in grouped.items():
        slowest = max(pairs)
        out[name] = {
            "p99_ms": round(percentile([v for v, _ in pairs], 99), 1),
            "max_ms": round(slowest[0], 1),
            "slowest": slowest[1],
            "requests": len(pairs),
        }
    return out


class RawResponse:
    """What soak.Generator reads of a response: its status, text and JSON."""

    __slots__ = ("content", "status_code")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self):
        return orjson.loads(self.content)


class RawClient:
    """Just enough of httpx.AsyncClient's post for soak.Generator, on asyncio streams: HTTP/1.1
    keep-alive connections (as many as requests in flight), responses framed by Content-Length
    (uvicorn sets it), bodies JSON-encoded once beforehand. With httpx the generator fell behind
    on this machine (365 requests/s due, 120-140 answered a second, its loop starting them 50-60
    ms late); with this it used 6-9% of a core at 128-286 requests/s."""

    # Idle connections are dropped before uvicorn's keep-alive timeout (5 s) closes them: a
    # request written into a connection the server had just closed read 0 bytes, an error
    # counted against whichever server it was (the floor's, once, 2026-12-04 at 35 requests/s).
    IDLE_EXPIRY = 2.0  # seconds, as soak's httpx pool (keepalive_expiry)

    def __init__(self, base: str) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname, url.port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The most recently used idle connection, or a new one; those idle past IDLE_EXPIRY are
        closed (the list is in the order they went idle)."""
        now = time.monotonic()
        while self.idle and now - self.idle[0][2] >= self.IDLE_EXPIRY:
            self.idle.pop(0)[1].close()
        if self.idle:
            reader, writer, _ = self.idle.pop()
            return reader, writer
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, *, json: bytes | dict, headers: dict[str, str]) -> RawResponse:
        body = json if isinstance(json, bytes) else orjson.dumps(json)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n"
        ).encode() + body
        reader, writer = await self._connection()
        try:
            writer.write(request)
            received = await reader.readuntil(b"\r\n\r\n")
            at = received.lower().index(b"\r\ncontent-length:") + 17
            content = await reader.readexactly(int(received[at : received.index(b"\r\n", at)]))
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise httpx.TransportError(f"{path}: {exc!r}") from exc
        self.idle.append((reader, writer, time.monotonic()))
        return RawResponse(int(received[9:12]), content)

    async def aclose(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


def open_loop(
    targets: dict[str, tuple[str, str, str, list[dict]]], *, rate: float, seconds: float, rounds: int = 3
) -> dict[str, dict]:
    """Each target (base URL, path, bearer token, bodies sent in turn) at `rate` requests per
    second, open loop (soak.Generator: a request due every 1/rate s whether or not the last has
    answered, at most OPEN_LOOP_IN_FLIGHT unanswered, the latency counted from when it was due),
    for seconds/rounds after a second's warm-up, the targets in turn, `rounds` times over. Also
    what the generator achieved: requests answered per second in the window, how late its event
    loop started them (the generator's own delay), and its CPU (of one core)."""
    from tests.bench.soak import Generator, Load  # soak imports this module

    per_round = max(1.0, seconds / rounds)
    collected: dict[str, dict] = {
        name: {"latencies": [], "answered": 0, "errors": 0, "late": 0, "dropped": 0, "lag": [], "cpu": 0.0, "wall": 0.0}
        for name in targets
    }

    async def one(name: str, base: str, path: str, token: str, bodies: list[bytes], offset: int) -> None:
        turn = itertools.cycle(bodies[offset:] + bodies[:offset])
        client = RawClient(base)
        load = Load(name, per_second=rate, in_flight=OPEN_LOOP_IN_FLIGHT)
        generator = Generator(load, client, token, turn.__next__, path=path)
        cpu = time.thread_time()
        start = time.monotonic()
        measured_from, end = start + 1, start + 1 + per_round

        def window(t: float) -> int:  # -1: the warm-up; 0: answered in the window; 1: after it
            return -1 if t < measured_from else 0 if t <= end else 1

        try:
            await generator.run(start, end, window)
        finally:
            await client.aclose()
        got = collected[name]
        got["cpu"] += time.thread_time() - cpu
        got["wall"] += time.monotonic() - start
        for bucket in (0, 1):
            m = generator.minutes.get(bucket)
            if m is not None:
                got["latencies"] += m.latencies
                got["errors"] += m.errors
                got["late"] += m.late
                got["dropped"] += m.dropped
        got["answered"] += len(generator.minutes[0].latencies) if 0 in generator.minutes else 0
        got["lag"] += generator.start_lag_ms
        if generator.first_error:
            got.setdefault("first_error", generator.first_error)

    encoded = {name: [orjson.dumps(b) for b in bodies] for name, (*_, bodies) in targets.items()}
    for r in range(rounds):
        for name, (base, path, token, _) in targets.items():
            uvloop.run(one(name, base, path, token, encoded[name], (r * 37) % len(encoded[name])))
    out = {}
    for name, got in collected.items():
        lat = got["latencies"]
        out[name] = {
            "rate": rate,
            "achieved_per_s": got["answered"] / (per_round * rounds),
            "p50_ms": percentile(lat, 50) if lat else None,
            "p99_ms": percentile(lat, 99) if lat else None,
            "max_ms": max(lat) if lat else None,
            "errors": got["errors"],
            "late": got["late"],
            "dropped": got["dropped"],
            "start_lag_p99_ms": percentile(got["lag"], 99) if got["lag"] else None,
            "generator_cpu": got["cpu"] / got["wall"],
            "first_error": got.get("first_error"),
        }
    return out


def start_floor(db_url: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
        "WEB_CONCURRENCY": str(WORKERS),
    }
    out = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.floor", str(port)],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"floor exited: {log_path.read_text()}")
        try:
            httpx.get(base + "/", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("floor did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def make_token(db_url: str) -> str:
    from app.domain import users

    conn = await asyncpg.connect(db_url)
    try:
        return await users.add_user(conn=conn, name="bench", grants=[("*", "write")], can_ingest=True)
    finally:
        await conn.close()


def graphql_ids(client: httpx.Client, base: str, token: str, q: str) -> list[str]:
    return [incident for incident, _ in graphql_answer(client, base, token, q)]


def graphql_answer(client: httpx.Client, base: str, token: str, q: str) -> list[tuple[str, list[str]]]:
    """The incidents the typeahead lists for q, each with its first alerts' ids."""
    response = client.post(
        base + "/graphql",
        json={"query": TYPEAHEAD, "variables": {"q": q}},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"typeahead {q!r}: {body['errors']}")
    return [
        (e["node"]["id"], [a["node"]["id"] for a in e["node"]["alerts"]["edges"]])
        for e in body["data"]["incidents"]["edges"]
    ]


# The typeahead as a client with persisted documents sends it: the document's SHA-256 alone
# (Apollo's automatic persisted queries; trusted documents send the same id).
TYPEAHEAD_SHA256 = hashlib.sha256(TYPEAHEAD.encode()).hexdigest()
PERSISTED_TYPEAHEAD = {"persistedQuery": {"version": 1, "sha256Hash": TYPEAHEAD_SHA256}}


def register_typeahead(client: httpx.Client, base: str, token: str, inputs: list[str]) -> None:
    """Registers the typeahead as Apollo's link does on a miss (the hash with the text), then
    checks that the hash alone answers as the text does for these inputs."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {"query": TYPEAHEAD, "extensions": PERSISTED_TYPEAHEAD, "variables": {"q": inputs[0]}}
    registered = client.post(base + "/graphql", json=body, headers=headers).json()
    if registered.get("errors"):
        raise RuntimeError(f"registering the typeahead failed: {registered['errors']}")
    for q in inputs:
        by_hash = client.post(
            base + "/graphql", json={"extensions": PERSISTED_TYPEAHEAD, "variables": {"q": q}}, headers=headers
        ).json()
        if by_hash.get("errors"):
            raise RuntimeError(f"persisted typeahead {q!r}: {by_hash['errors']}")
        if [e["node"]["id"] for e in by_hash["data"]["incidents"]["edges"]] != graphql_ids(client, base, token, q):
            raise RuntimeError(f"persisted typeahead {q!r} answers differently from the plain one")


# --- issue 16: the typeahead with evidence, beside the anchors' way of doing it -------------------

TYPEAHEAD_EVIDENCE = (
    "query Typeahead($q: String!) { incidents(filter: {search: $q}, first: 10) { edges { node {"
    " id name status severity lastActivityAt alertCount matchedEvidence { kind value }"
    " alerts(first: 5) { edges { node { id title severity detectedAt } } } } } } }"
)
EVIDENCE_REFERENCE = """
SELECT i.id FROM incidents i WHERE {where} ORDER BY i.last_activity_at DESC, i.id DESC LIMIT 11
"""


async def evidence_reference_ids(db_url: str, inputs: list[str]) -> list[list[str] | None]:
    """The first 10 incidents of each search by the plain rule with evidence (README, Evidence
    search): the number first, then every word in the name, or every word in one value of an
    entity of one of its alerts (words of 3 characters or more), newest first. None: timed out."""
    from app.domain import evidence, search

    conn = await asyncpg.connect(db_url, server_settings={"statement_timeout": "20000"})
    out: list[list[str] | None] = []
    try:
        for q in inputs:
            words = search.words(q)
            number = search.as_number(q)
            args: list[object] = [search.like_pattern(w) for w in words]
            by_name = " AND ".join(f"i.name ILIKE ${n + 1}" for n in range(len(words))) or "true"
            where = by_name
            if evidence.words_for_evidence(words):
                in_value = " AND ".join(f"e.value ILIKE ${n + 1}" for n in range(len(words)))
                where = (
                    f"({by_name} OR EXISTS (SELECT 1 FROM alerts a JOIN alert_entities e ON e.alert_id = a.id"
                    f" WHERE a.incident_id = i.id AND {in_value}))"
                )
            if number is not None:
                args.append(number)
                where += f" AND i.id <> ${len(args)}"
            try:
                rows = await conn.fetch(EVIDENCE_REFERENCE.format(where=where), *args)
            except asyncpg.QueryCanceledError:
                out.append(None)
                continue
            ids = [typed_id(INCIDENT, r["id"]) for r in rows]
            if number is not None and await conn.fetchval("SELECT 1 FROM incidents WHERE id = $1", number):
                ids = [typed_id(INCIDENT, number), *ids]
            out.append(ids[:10])
    finally:
        await conn.close()
    return out


def measure_evidence_mix(
    db_url: str, api: str, floor: str, token: str, data: bench_inputs.Inputs, scale: Scale, workdir: Path
) -> dict:
    """The typeahead with evidence over the realistic mix and the evidence inputs, every answer
    first checked against the plain rule, then side by side with the anchors' SQL (pg_trgm on
    names, present while the typeahead is measured, and on entity values, built here and dropped
    after)."""
    qs = list(dict.fromkeys(data.mix + data.evidence))
    log("building the anchors' index on entity values (pg_trgm) for their SQL and the plain rule")
    asyncio.run(database.anchor_evidence_index(db_url, present=True))
    try:
        log("checking typeahead answers with evidence against the plain SQL rule")
        expected = asyncio.run(evidence_reference_ids(db_url, qs))
        with httpx.Client(timeout=30) as client:
            ours = []
            for q in qs:
                response = client.post(
                    api + "/graphql",
                    json={"query": TYPEAHEAD_EVIDENCE, "variables": {"q": q}},
                    headers={"Authorization": f"Bearer {token}"},
                ).json()
                if response.get("errors"):
                    raise RuntimeError(f"typeahead with evidence {q!r}: {response['errors']}")
                ours.append([e["node"]["id"] for e in response["data"]["incidents"]["edges"]])
        mismatches = [q for q, got, want in zip(qs, ours, expected, strict=True) if want not in (None, got)]
        if mismatches:
            raise SystemExit(f"typeahead answers with evidence differ from the plain rule for {mismatches[:10]}")
        checked = sum(1 for e in expected if e is not None)
        log(f"{checked} of {len(qs)} inputs answered as the plain rule with evidence does (the rest timed out there)")
        gq = bodies_file(
            workdir, "evidence-graphql.jsonl", [{"query": TYPEAHEAD_EVIDENCE, "variables": {"q": q}} for q in qs]
        )
        aq = bodies_file(workdir, "evidence-anchor.jsonl", [{"q": q} for q in qs])
        targets = {"graphql": (api, gq, "/graphql", token), "anchor": (floor, aq, "/anchor-evidence", token)}
        log(f"typeahead with evidence ({len(qs)} inputs): {', '.join(targets)}, side by side")
        measured = load_side_by_side(targets, seconds=scale.seconds, warmup=scale.warmup)
    finally:
        asyncio.run(database.anchor_evidence_index(db_url, present=False))
    return {"inputs": len(qs), "checked": checked, **measured}


def evidence_figures(e: dict) -> dict:
    return {"evidence_mix_rps": round(e["graphql"]["rps"]), "evidence_mix_anchor_rps": round(e["anchor"]["rps"])}


def evidence_rows(e: dict) -> list[tuple[str, str, str]]:
    ours, anchor = e["graphql"], e["anchor"]
    errors = sum(r[k] for r in (ours, anchor) for k in ("errors", "socket_errors", "non_2xx"))
    return [
        (
            f"typeahead with evidence, realistic mix and evidence inputs ({e['inputs']}), 8 connections",
            f"{ours['rps']:,.0f} rps (anchors' SQL {anchor['rps']:,.0f}: {ours['rps'] / anchor['rps']:.2f}x);"
            f" p99 {ours['p99_ms']:.1f} ms (anchors {anchor['p99_ms']:.1f}); {e['checked']} of {e['inputs']} answers"
            f" checked; {errors} errors",
            ">= 1.2x anchors",
        )
    ]


def slowest(latencies: list[float], n: int = 3) -> str:
    """The n slowest requests, each with its place in the sequence (1 is the first timed one, just
    after the checkpoint's first writes of the warm-up): whether a p95 is the first requests'
    full-page images (issue 18) or a stall later on."""
    worst = sorted(range(len(latencies)), key=lambda i: -latencies[i])[:n]
    return ", ".join(f"#{i + 1} {latencies[i]:.0f} ms" for i in worst)


def timed_mutations(
    client: httpx.Client, base: str, token: str, requests: list[tuple[str, dict]], payloads: list | None = None
) -> list[float]:
    """Sends the mutations one after another; their latencies in ms (and each one's payload
    appended to `payloads`, if given). Fails on any error."""
    latencies = []
    for query, variables in requests:
        started = time.perf_counter()
        response = client.post(
            base + "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
        latencies.append((time.perf_counter() - started) * 1000)
        body = response.json()
        payload = next(iter((body.get("data") or {}).values()), None) or {}
        if body.get("errors") or payload.get("errors"):
            raise RuntimeError(f"mutation failed: {body}")
        if payloads is not None:
            payloads.append(payload)
    return latencies


async def count_detail_statements(db_url: str, incident_id: int, token: str) -> int:
    """How many SQL statements one incident-detail request sends (the app in process)."""
    from app import db
    from app.config import Settings
    from app.server import create_app

    statements: list[str] = []

    async def record(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda q: "typeinfo_tree" not in q.query and statements.append(q.query))

    pool = await asyncpg.create_pool(
        db_url, min_size=1, max_size=4, init=record, reset=db.keep_session, server_settings=db.SERVER_SETTINGS
    )
    settings = Settings(**{**Settings.from_env().__dict__, "database_url": db_url})
    app = create_app(settings, pool=pool)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for _ in range(2):  # the second request: a warm connection
                statements.clear()
                response = await client.post(
                    "/graphql",
                    json={"query": DETAIL, "variables": {"id": typed_id(INCIDENT, incident_id)}},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 200 and "errors" not in response.json(), response.text
    finally:
        await pool.close()
    return len(statements)


def movers(api: str, token: str, data: bench_inputs.Inputs, seconds: float) -> dict:
    """16 clients moving 1-10 alerts of a shared pool into a few incidents (moves.lua)."""
    return wrk(
        api,
        "moves.lua",
        seconds=seconds,
        connections=16,
        threads=2,
        env={
            "BENCH_TOKEN": token,
            "BENCH_ALERTS": ",".join(typed_id(ALERT, a) for a in data.move_alerts),
            "BENCH_TARGETS": ",".join(typed_id(INCIDENT, i) for i in data.move_targets),
        },
    )


def measure_merges(api: str, token: str, data: bench_inputs.Inputs, scale: Scale, run_id: str) -> dict:
    """Merging 10 incidents of 1,000 alerts and reverting it, one after another; then the movers
    without and with a client merging and reverting those incidents beside them, back to back.
    The incidents are the benchmark's own, made once per database (tests/bench/merges.py)."""
    with httpx.Client(timeout=120) as client:
        log("merges: ingesting 10 incidents of 1,000 alerts")
        incidents = merges.make_incidents(client, api, token, run_id)
        log(f"merges: merging them and reverting the merge, {scale.merge_runs} times after a warm-up")
        timed = merges.time_merges(client, api, token, incidents, scale.merge_runs)
    log("merges: 16 movers alone, then with a client merging and reverting beside them")
    alone = movers(api, token, data, scale.seconds)
    with merges.MergeLoop(api, token, incidents) as loop:
        beside = movers(api, token, data, scale.seconds)
    if loop.errors:
        raise RuntimeError(f"merging beside the movers failed: {loop.errors[0]}")
    return {**timed, "alone": alone, "beside": beside, "cycles": loop.cycles}


def move_errors(moves: dict) -> int:
    return moves["errors"] + moves["socket_errors"] + moves["non_2xx"]


def merge_figures(m: dict) -> dict:
    """The merges' entries of the final JSON line."""
    return {
        "merge_10x1000_p95_ms": round(percentile(m["merge"], 95), 1),
        "revert_merge_10x1000_p95_ms": round(percentile(m["revert"], 95), 1),
        "moves_with_merges_per_s": round(m["beside"]["rps"], 1),
        "moves_without_merges_per_s": round(m["alone"]["rps"], 1),
        "move_errors_with_merges": move_errors(m["beside"]),
        "merges_beside_moves": m["cycles"],
    }


def merge_rows(m: dict) -> list[tuple[str, str, str]]:
    """The merges' rows of the table."""
    figures = merge_figures(m)
    return [
        (
            "mergeIncidents, 10 incidents of 1,000 alerts",
            f"p95 {figures['merge_10x1000_p95_ms']} ms (median {statistics.median(m['merge']):.0f}, n={len(m['merge'])})",
            "p95 <= 2,000 ms",
        ),
        (
            "revertMove of that merge",
            f"p95 {figures['revert_merge_10x1000_p95_ms']} ms"
            f" (median {statistics.median(m['revert']):.0f}, n={len(m['revert'])})",
            "p95 <= 2,000 ms",
        ),
        (
            "16 movers with a client merging and reverting beside them",
            f"{m['beside']['rps']:,.0f} moves/s, {figures['move_errors_with_merges']} errors"
            f" (without merges, just before: {m['alone']['rps']:,.0f} moves/s, {move_errors(m['alone'])} errors);"
            f" {m['cycles']} merges and reverts of 10,000 alerts meanwhile",
            "measured beside the movers alone",
        ),
    ]


def measure_tail(
    api: str,
    floor: str,
    token: str,
    data: bench_inputs.Inputs,
    scale: Scale,
    rate: float,
    activity: pgactivity.Activity,
    during: dict[str, pgactivity.Window],
) -> tuple[dict[str, dict], dict, int, dict[str, dict]]:
    """The mix at one connection (by input class, and its errors), then the floor's (the same
    domain functions, so the same SQL, through a bare Starlette route: what the server adds to
    the SQL's tail), then the open loop at `rate` for our server, the floor and the anchors' SQL
    (which needs database.ANCHOR_INDEX)."""
    bodies = [{"query": TYPEAHEAD, "variables": {"q": q}} for q in data.mix]
    log(
        f"typeahead tail: the mix at 1 connection, {scale.tail_passes} passes after a warm-up pass, ours then the floor"
    )
    with activity.window() as during["typeahead 1 connection"]:
        one_conn, errors = one_connection(api, token, bodies, scale.tail_passes)
    with activity.window() as during["typeahead 1 connection, floor"]:
        floor_conn, floor_errors = one_connection(
            floor, token, [{"q": q} for q in data.mix], scale.tail_passes, path="/floor"
        )
    if floor_errors:
        log(f"typeahead tail: the floor answered {floor_errors} requests at one connection with an error")
    floor_tail = {**tail_by_class(data.mix, data.mix_classes, floor_conn)["all"], "errors": floor_errors}
    log(f"typeahead tail: open loop at {rate:.0f}/s, ours, the floor and the anchors' SQL in turn")
    targets = {
        "graphql": (api, "/graphql", token, bodies),
        "floor": (floor, "/floor", token, [{"q": q} for q in data.mix]),
        "anchor": (floor, "/anchor", token, [{"q": q} for q in data.mix]),
    }
    with activity.window() as during["typeahead open loop"]:
        opened = open_loop(targets, rate=rate, seconds=scale.seconds)
    for name, o in opened.items():
        if o["first_error"]:
            log(f"open loop {name}: first error {o['first_error']}")
    return tail_by_class(data.mix, data.mix_classes, one_conn), floor_tail, errors, opened


def main_tail(db_url: str) -> None:
    """The typeahead's tail alone (measure_tail), at the small scale's settings, on a seeded
    database of any size: the floor's mix throughput first (wrk, 8 connections), for the rate."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench-deps` installs it (Debian package wrk)")
    scale = SCALES["small"]
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs={}))
    workdir = Path(tempfile.mkdtemp(prefix="bench-tail-", dir=ROOT / ".data"))
    asyncio.run(database.anchor_index(db_url, present=True))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    floor_proc = None
    try:
        server.wait_healthy()
        floor_proc, floor = start_floor(db_url, workdir / "floor.log")
        fq = bodies_file(workdir, "mix-floor.jsonl", [{"q": q} for q in data.mix])
        floor_rps = load(floor, fq, path="/floor", token=token, seconds=scale.seconds, warmup=scale.warmup)["rps"]
        rate = OPEN_LOOP_SHARE * floor_rps
        # Our server warmed as the floor was (make bench's earlier loads do it there), over
        # enough connections to reach every worker: else the open loop met a worker that the one
        # connection never reached, reading its evidence sample and opening its pool's
        # connections (2026-12-06, six runs: p99 2.4-19x the floor's cold, 1.46-1.48x warmed).
        gq = bodies_file(workdir, "mix-graphql.jsonl", [{"query": TYPEAHEAD, "variables": {"q": q}} for q in data.mix])
        load(server.url, gq, path="/graphql", token=token, seconds=scale.seconds, warmup=0, connections=4 * WORKERS)
        during: dict[str, pgactivity.Window] = {}
        with pgactivity.Activity(db_url) as activity:
            tail, floor_tail, errors, opened = measure_tail(
                server.url, floor, token, data, scale, rate, activity, during
            )
    finally:
        if floor_proc is not None:
            stop(floor_proc)
        server.stop()
        asyncio.run(database.anchor_index(db_url, present=False))
    rows = [*tail_rows(tail, floor_tail, scale.tail_passes), *open_loop_rows(opened, rate, floor_rps)]
    width = max(len(row[0]) for row in rows)
    for what, value, target in rows:
        print(f"| {what.ljust(width)} | {value} | {target} |")
    print(f"errors: {errors + sum(o['errors'] for o in opened.values())}")
    print(json.dumps({"tail": tail, "floor_tail": floor_tail, "open_loop": opened}))


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def tail_rows(tail: dict[str, dict], floor_tail: dict, passes: int) -> list[tuple[str, str, str]]:
    """The one-connection rows of the table: the whole mix (and the floor's), then each input class."""
    everything = tail["all"]
    worst = max((k for k in tail if k != "all"), key=lambda k: tail[k]["p99_ms"])
    rows = [
        (
            "typeahead, realistic mix, 1 connection",
            f"p99 {everything['p99_ms']:.1f} ms, max {everything['max_ms']:.1f} ({everything['requests']:,} requests,"
            f" {passes} passes); worst class {worst}: p99 {tail[worst]['p99_ms']:.1f} ms;"
            f" the floor (the same SQL, bare Starlette) p99 {floor_tail['p99_ms']:.1f} ms, max {floor_tail['max_ms']:.1f}"
            + (f", {floor_tail['errors']} errors" if floor_tail["errors"] else ""),
            f"p99 <= {ONE_CONNECTION_P99_MS} ms, every class p99 <= {CLASS_P99_MS} ms",
        )
    ]
    for name, t in tail.items():
        if name != "all":
            rows.append(
                (
                    f"- 1 connection, {name} ({t['requests'] // passes} inputs)",
                    f"p99 {t['p99_ms']:.1f} ms, max {t['max_ms']:.1f} ({t['slowest']!r})",
                    f"p99 <= {CLASS_P99_MS} ms",
                )
            )
    return rows


def open_loop_rows(opened: dict[str, dict], rate: float, floor_rps: float) -> list[tuple[str, str, str]]:
    """The open loop's rows: the three targets' p99 at the same rate, and what the generator did."""

    def figure(o: dict) -> str:
        if o["p99_ms"] is None:
            return "nothing answered"
        dropped = f", {o['dropped']} dropped" if o["dropped"] else ""
        return f"p99 {o['p99_ms']:.1f} ms (p50 {o['p50_ms']:.1f}, {o['achieved_per_s']:,.0f}/s answered{dropped})"

    ours, fl, anchor = opened["graphql"], opened["floor"], opened["anchor"]
    ratio = f"{ours['p99_ms'] / fl['p99_ms']:.2f}x the floor's" if ours["p99_ms"] and fl["p99_ms"] else "n/a"
    return [
        (
            f"typeahead, realistic mix, open loop at {rate:,.0f}/s ({OPEN_LOOP_SHARE:.0%} of the floor's {floor_rps:,.0f})",
            f"ours {figure(ours)}: {ratio}; floor {figure(fl)}; anchors' SQL {figure(anchor)}",
            f"ours p99 <= {OPEN_LOOP_P99_RATIO}x the floor's",
        ),
        (
            "- the open loop's generator (soak.Generator, RawClient; CPU of one core)",
            "; ".join(
                f"{name}: started p99 {o['start_lag_p99_ms']:.1f} ms late, CPU {o['generator_cpu']:.0%}"
                for name, o in opened.items()
            ),
            "keeps its rate",
        ),
    ]


def ingest_batches(entities: list[tuple[str, str]], batches: int, run_id: str) -> list[list[dict]]:
    """`batches` batches of 500 alerts (alert_batches)."""
    return list(itertools.islice(alert_batches(entities, run_id), batches))


def alert_batches(entities: list[tuple[str, str]], run_id: str, size: int = 500) -> Iterator[list[dict]]:
    """Alerts as a detection source sends them, written like the seeded ones: half share a host,
    account or IP with an alert of the last day (correlation joins them), half are new stories."""
    import random

    from app.domain import bulk_seed as vocabulary

    rng = random.Random(int(run_id))
    for b in itertools.count():
        batch = []
        for n in range(size):
            category, template = vocabulary.DETECTIONS[rng.randrange(len(vocabulary.DETECTIONS))]
            host = f"{rng.choice(vocabulary.HOST_PREFIXES)}-{rng.randint(1000, 99999)}"
            user = f"{rng.choice(vocabulary.FIRST)}.{rng.choice(vocabulary.LAST)}"
            ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"
            evidence = [("device", host), ("user", user)]
            if rng.random() < 0.5 and entities:
                shared = entities[rng.randrange(len(entities))]
                evidence = [shared, *(e for e in evidence if e[0] != shared[0])]
                host = next(v for k, v in evidence if k == "device")
                user = next(v for k, v in evidence if k == "user")
                ip = next((v for k, v in evidence if k == "ip"), ip)
            email = f"{user}@{rng.choice(vocabulary.DOMAINS)}"
            title = template.format(
                host=host,
                user=user,
                email=email,
                file=rng.choice(vocabulary.TOOLS),
                ip=ip,
                url=f"https://{rng.choice(vocabulary.WORDS)}-{rng.choice(vocabulary.WORDS)}.com/a",
            )
            batch.append(
                {
                    "externalId": f"bench-{run_id}-{b}-{n}",
                    "title": title,
                    "severity": rng.choice(["LOW", "MEDIUM", "MEDIUM", "HIGH"]),
                    "category": category,
                    "entities": [{"kind": k.upper(), "value": v} for k, v in dict.fromkeys(evidence)],
                }
            )
        yield batch


def main() -> None:
    if sys.argv[1:2] == ["live"]:
        main_live(sys.argv[2] if len(sys.argv) > 2 else os.environ["DATABASE_URL"])
        return
    if sys.argv[1:2] == ["tail"]:
        main_tail(sys.argv[2] if len(sys.argv) > 2 else os.environ["DATABASE_URL"])
        return
    if sys.argv[1:2] == ["writes"]:
        main_writes(sys.argv[2] if len(sys.argv) > 2 else os.environ["DATABASE_URL"])
        return
    if sys.argv[1:2] == ["movers"]:
        main_movers(sys.argv[2] if len(sys.argv) > 2 else os.environ["DATABASE_URL"])
        return
    if sys.argv[1:2] == ["searching"]:
        main_searching(sys.argv[2] if len(sys.argv) > 2 else os.environ["DATABASE_URL"])
        return
    if sys.argv[1:2] == ["merges"]:
        main_merges(sys.argv[2] if len(sys.argv) > 2 else os.environ["DATABASE_URL"])
        return
    scale_name = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SCALE") or "full").lower()
    if scale_name not in SCALES:
        sys.exit(f"unknown scale {scale_name!r}: use full or small")
    scale = SCALES[scale_name]
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench` installs it (Debian package wrk)")
    started = time.monotonic()

    db_url, seed_seconds = asyncio.run(database.prepare(scale.incidents, log=log))
    token = asyncio.run(make_token(db_url))
    log("choosing inputs")
    data = asyncio.run(bench_inputs.build(db_url, link_runs=scale.link_runs))
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=ROOT / ".data"))

    asyncio.run(bench_postgraphile.install_functions(db_url))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    floor_proc = postgraphile = None
    try:
        postgraphile = bench_postgraphile.PostGraphile(
            db_url, workdir / "postgraphile.log", processes=POSTGRAPHILE_PROCESSES, log=log
        )
        server.wait_healthy()
        floor_proc, floor = start_floor(db_url, workdir / "floor.log")
        postgraphile.wait_ready()
        postgraphile_token = bench_postgraphile.viewer_token(
            postgraphile.secret, asyncio.run(bench_postgraphile.user_id(db_url, "bench"))
        )
        api = server.url
        rss = RssSampler(server.proc.pid)
        results: dict[str, object] = {}
        table: list[tuple[str, str, str]] = []
        activity = pgactivity.Activity(db_url).__enter__()
        during: dict[str, pgactivity.Window] = {}  # what PostgreSQL did in each timed phase

        # The evidence walk reads alerts and their entities through index-only scans, which
        # visit the table for every page an earlier run's writes left not all-visible: after
        # one run (330,000 alert updates), 25% more time over the mix in one process at 1M.
        log("vacuuming what earlier runs wrote, before the typeahead")
        asyncio.run(database.vacuum_written(db_url, log=log))
        log("building the anchors' index (pg_trgm on the name) for their SQL and the plain rule")
        asyncio.run(database.anchor_index(db_url, present=True))
        # Same answers as the plain rule, before timing anything.
        log("checking typeahead answers against the plain SQL rule")
        all_inputs = list(dict.fromkeys(data.cheap + data.mix))
        # The plain rule's EXISTS over entity values needs the anchors' index on them: without
        # it, each rare host read the whole table (9.5 minutes for the 237 inputs at 1M
        # incidents, 80 s with it). Built for the check only: the typeahead rounds run as before.
        asyncio.run(database.anchor_evidence_index(db_url, present=True))
        try:
            expected = asyncio.run(evidence_reference_ids(db_url, all_inputs))
        finally:
            asyncio.run(database.anchor_evidence_index(db_url, present=False))
        with httpx.Client(timeout=30) as client:
            ours = [graphql_answer(client, api, token, q) for q in all_inputs]
            theirs = [
                bench_postgraphile.typeahead_ids(client, postgraphile.url, postgraphile_token, q) for q in all_inputs
            ]
        mismatches = [
            q
            for q, got, want in zip(all_inputs, ours, expected, strict=True)
            if want not in (None, [incident for incident, _ in got])
        ]
        checked = sum(1 for e in expected if e is not None)
        if mismatches:
            raise SystemExit(f"typeahead answers differ from the plain rule for {mismatches[:10]}")
        log(f"{checked} inputs answered as the plain rule does")
        differing = [q for q, got, other in zip(all_inputs, ours, theirs, strict=True) if got != other]
        if differing:
            raise SystemExit(f"PostGraphile's typeahead lists other incidents or alerts than ours for {differing[:10]}")
        log(f"PostGraphile answers all {len(all_inputs)} inputs with the same incidents and alerts as our server")
        with httpx.Client(timeout=30) as client:
            register_typeahead(client, api, token, all_inputs[:20])
        log("the typeahead is registered as a persisted document; its hash answers as its text does")

        def graphql_body(q: str) -> dict:
            return {"query": TYPEAHEAD, "variables": {"q": q}}

        def persisted_body(q: str) -> dict:
            return {"extensions": PERSISTED_TYPEAHEAD, "variables": {"q": q}}

        sets = {"cheap": data.cheap, "mix": data.mix}
        for name, qs in sets.items():
            gq = bodies_file(workdir, f"{name}-graphql.jsonl", [graphql_body(q) for q in qs])
            pq = bodies_file(workdir, f"{name}-persisted.jsonl", [persisted_body(q) for q in qs])
            fq = bodies_file(workdir, f"{name}-floor.jsonl", [{"q": q} for q in qs])
            pgq = bodies_file(workdir, f"{name}-postgraphile.jsonl", [bench_postgraphile.body(q) for q in qs])
            targets = {
                "graphql": (api, gq, "/graphql", token),
                "persisted": (api, pq, "/graphql", token),
                "floor": (floor, fq, "/floor", token),
                "postgraphile": (postgraphile.url, pgq, "/graphql", postgraphile_token),
            }
            if name == "mix":
                targets["anchor"] = (floor, fq, "/anchor", token)
            log(f"typeahead {name}: {', '.join(targets)}, side by side")
            with activity.window() as during[f"typeahead {name}"]:
                side_by_side = load_side_by_side(targets, seconds=scale.seconds, warmup=scale.warmup)
            for target, result in side_by_side.items():
                results[f"{name}_{target}"] = result
        postgraphile.stop()  # nothing after the typeahead measures it

        rate = OPEN_LOOP_SHARE * results["mix_floor"]["rps"]
        tail, floor_tail, one_conn_errors, opened = measure_tail(api, floor, token, data, scale, rate, activity, during)
        with activity.window() as during["typeahead with evidence"]:
            evidence_mix = measure_evidence_mix(db_url, api, floor, token, data, scale, workdir)
        asyncio.run(database.anchor_index(db_url, present=False))
        log("vacuuming what the writes touch, then a checkpoint")
        asyncio.run(database.vacuum_written(db_url, log=log))

        log("incident detail")
        dq = bodies_file(
            workdir,
            "detail.jsonl",
            [{"query": DETAIL, "variables": {"id": typed_id(INCIDENT, i)}} for i in data.detail_incidents],
        )
        with activity.window() as during["incident detail"]:
            detail = load(
                api, dq, path="/graphql", token=token, seconds=scale.seconds, warmup=scale.warmup, connections=1
            )
        detail_statements = asyncio.run(count_detail_statements(db_url, data.detail_incidents[0], token))

        log("queue sorts, 25 a page, 10 pages deep, 1 connection")
        queue: dict[str, dict] = {}
        with httpx.Client(timeout=30) as client:
            for sort in QUEUE_SORTS:
                qq = bodies_file(workdir, f"queue-{sort}.jsonl", queue_bodies(client, api, token, sort))
                queue[sort] = load(
                    api, qq, path="/graphql", token=token, seconds=scale.seconds, warmup=scale.warmup, connections=1
                )

        link, moves, ingest_ms, run_id = measure_writes(api, token, data, scale, activity, during)

        # Last: its set-up ingests 10,000 alerts, which nothing measured before should meet.
        with activity.window() as during["merges and movers beside them"]:
            merged = measure_merges(api, token, data, scale, run_id)
        server_rss = rss.stop()
        activity.__exit__()
        # Live updates (issue 13): two server processes of their own, the movers through one.
        live = measure_live(db_url, token, data)

        counts = asyncio.run(_counts(db_url))
        cheap, cheap_floor = results["cheap_graphql"], results["cheap_floor"]
        mix, mix_floor, anchor = results["mix_graphql"], results["mix_floor"], results["mix_anchor"]
        cheap_persisted, mix_persisted = results["cheap_persisted"], results["mix_persisted"]
        cheap_pgl, mix_pgl = results["cheap_postgraphile"], results["mix_postgraphile"]
        writes = write_figures(link, moves, ingest_ms)
        final = {
            "typeahead_cheap_rps": round(cheap["rps"]),
            "typeahead_cheap_floor_rps": round(cheap_floor["rps"]),
            "typeahead_mix_rps": round(mix["rps"]),
            "typeahead_mix_floor_rps": round(mix_floor["rps"]),
            "typeahead_mix_anchor_rps": round(anchor["rps"]),
            "typeahead_cheap_postgraphile_rps": round(cheap_pgl["rps"]),
            "typeahead_mix_postgraphile_rps": round(mix_pgl["rps"]),
            "typeahead_mix_p99_ms": round(mix["p99_ms"], 1),
            "typeahead_cheap_persisted_rps": round(cheap_persisted["rps"]),
            "typeahead_mix_persisted_rps": round(mix_persisted["rps"]),
            "typeahead_mix_persisted_p99_ms": round(mix_persisted["p99_ms"], 1),
            "typeahead_1conn_p99_ms": tail["all"]["p99_ms"],
            "typeahead_1conn_max_ms": tail["all"]["max_ms"],
            "typeahead_1conn_by_class": {k: v for k, v in tail.items() if k != "all"},
            "typeahead_1conn_floor_p99_ms": floor_tail["p99_ms"],
            "typeahead_open_loop_per_s": round(rate),
            "typeahead_open_loop_p99_ms": ms(opened["graphql"]["p99_ms"]),
            "typeahead_open_loop_floor_p99_ms": ms(opened["floor"]["p99_ms"]),
            "typeahead_open_loop_anchor_p99_ms": ms(opened["anchor"]["p99_ms"]),
            "typeahead_open_loop_achieved_per_s": {k: round(o["achieved_per_s"], 1) for k, o in opened.items()},
            # Like with like: our search (names and evidence) against the anchors' SQL for the same
            # search, on the same inputs (the evidence rounds). Until 2026-12-06 this key was the
            # realistic mix against the anchors' name-only SQL, which reads no evidence: that ratio
            # is small_name_mix_vs_anchor.
            "small_mix_vs_anchor": (
                round(evidence_mix["graphql"]["rps"] / evidence_mix["anchor"]["rps"], 2)
                if scale_name == "small"
                else None
            ),
            "small_name_mix_vs_anchor": round(mix["rps"] / anchor["rps"], 2) if scale_name == "small" else None,
            **evidence_figures(evidence_mix),
            **{k: v for k, v in writes.items() if k != "ingest_alerts_per_s"},
            **merge_figures(merged),
            "detail_p95_ms": round(detail["p95_ms"], 1),
            "detail_sql_statements": detail_statements,
            **{f"queue_{sort.lower()}_p95_ms": round(queue[sort]["p95_ms"], 1) for sort in QUEUE_SORTS},
            "ingest_alerts_per_s": writes["ingest_alerts_per_s"],
            "seed_seconds": round(seed_seconds),
            "server_rss_mb": round(server_rss),
            "live_commit_to_event_p50_ms": live["live_commit_to_event_p50_ms"],
            "live_commit_to_event_p95_ms": live["live_commit_to_event_p95_ms"],
            "live_moves_without_subscribers_per_s": live["moves_without_subscribers_per_s"],
            "live_moves_with_subscribers_per_s": live["moves_with_subscribers_per_s"],
            "live_ended": live["live_ended"],
            "live_kb_per_subscription": live["live_kb_per_subscription"],
            "incidents": counts["incidents"],
            "alerts": counts["alerts"],
            "postgres_during": {
                phase: {k: v for k, v in w.as_json().items() if k in PHASE_KEYS} for phase, w in during.items()
            },
        }
        typeahead_errors = sum(r["errors"] + r["socket_errors"] + r["non_2xx"] for r in results.values())
        typeahead_errors += one_conn_errors + sum(o["errors"] for o in opened.values())

        def row(what, value, target):
            table.append((what, value, target))

        row(
            "typeahead, cheap inputs, 8 connections",
            f"{cheap['rps']:,.0f} rps (floor {cheap_floor['rps']:,.0f}: {cheap['rps'] / cheap_floor['rps']:.0%});"
            f" p99 {cheap['p99_ms']:.1f} ms (floor {cheap_floor['p99_ms']:.1f})",
            ">= 60% of the floor",
        )
        row(
            "typeahead, realistic mix, 8 connections",
            f"{mix['rps']:,.0f} rps (floor {mix_floor['rps']:,.0f}; anchors' SQL {anchor['rps']:,.0f}:"
            f" {mix['rps'] / anchor['rps']:.2f}x); p99 {mix['p99_ms']:.1f} ms (floor {mix_floor['p99_ms']:.1f},"
            f" anchors {anchor['p99_ms']:.1f})",
            ">= 1.2x anchors, p99 <= 25 ms",
        )
        node_processes = f"{POSTGRAPHILE_PROCESSES} Node process{'es' if POSTGRAPHILE_PROCESSES > 1 else ''}"
        for set_name, plain, other, ratio in (
            ("cheap inputs", cheap, cheap_pgl, 1.2),
            ("realistic mix", mix, mix_pgl, 1.5),
        ):
            row(
                f"typeahead, {set_name}, PostGraphile ({node_processes}), 8 connections",
                f"{other['rps']:,.0f} rps (ours {plain['rps']:,.0f}: {plain['rps'] / other['rps']:.2f}x);"
                f" p99 {other['p99_ms']:.1f} ms (ours {plain['p99_ms']:.1f})",
                f"ours >= {ratio}x its rps, lower p99",
            )
        for set_name, plain, by_hash in (
            ("cheap inputs", cheap, cheap_persisted),
            ("realistic mix", mix, mix_persisted),
        ):
            row(
                f"typeahead, {set_name}, persisted document (hash only)",
                f"{by_hash['rps']:,.0f} rps ({by_hash['rps'] / plain['rps']:.0%} of the plain text's"
                f" {plain['rps']:,.0f}); p99 {by_hash['p99_ms']:.1f} ms (plain {plain['p99_ms']:.1f})",
                "measured beside the text",
            )
        if final["small_mix_vs_anchor"] is not None:
            row(
                "typeahead with evidence, realistic mix at the small scale: ours / the anchors' SQL",
                f"{final['small_mix_vs_anchor']:.2f}x ({evidence_mix['graphql']['rps']:,.0f} against"
                f" {evidence_mix['anchor']['rps']:,.0f} rps; names only, their SQL searching names alone:"
                f" {mix['rps'] / anchor['rps']:.2f}x)",
                ">= 1.0x",
            )
        table.extend(tail_rows(tail, floor_tail, scale.tail_passes))
        table.extend(open_loop_rows(opened, rate, results["mix_floor"]["rps"]))
        table.extend(evidence_rows(evidence_mix))
        row("typeahead errors", f"{typeahead_errors}", "0")
        row(
            "linkAlerts, 100 alerts",
            f"p95 {final['link_100_p95_ms']} ms (median {statistics.median(link[100]):.0f}, n={len(link[100])};"
            f" slowest {slowest(link[100])})",
            "p95 <= 100 ms",
        )
        row(
            "linkAlerts, 1,000 alerts",
            f"p95 {final['link_1000_p95_ms']} ms (median {statistics.median(link[1000]):.0f}, n={len(link[1000])};"
            f" slowest {slowest(link[1000])})",
            "p95 <= 1,000 ms",
        )
        row(
            "16 clients moving 1-10 overlapping alerts",
            f"{moves['rps']:,.0f} moves/s, {final['move_errors']} errors",
            ">= 200/s, 0 errors",
        )
        table.extend(merge_rows(merged))
        row(
            "incident detail (50 alerts, 50 log entries), 1 connection",
            f"p95 {detail['p95_ms']:.1f} ms (p50 {detail['p50_ms']:.1f}), {detail_statements} SQL statements",
            "p95 <= 15 ms",
        )
        for sort in QUEUE_SORTS:
            row(
                f"queue sorted by {sort}, 25 a page, first 10 pages, 1 connection",
                f"p95 {queue[sort]['p95_ms']:.1f} ms (p50 {queue[sort]['p50_ms']:.1f})",
                "measured (issue 15)",
            )
        row("ingestAlerts, batches of 500", f"{final['ingest_alerts_per_s']:,} alerts/s", ">= 2,000/s")
        row(
            f"live updates: commit to a subscriber on the other process, {live['live_subscriptions']:,}"
            f" subscriptions ({live['live_queue_subscriptions']} queue-wide), movers running",
            f"p95 {live['live_commit_to_event_p95_ms']} ms (p50 {live['live_commit_to_event_p50_ms']},"
            f" n={live['live_commits_probed']})",
            "p95 <= 100 ms",
        )
        without, beside = live["moves_without_subscribers_per_s"], live["moves_with_subscribers_per_s"]
        row(
            "live updates: the 16 movers through one process, without / with the subscriptions",
            f"{without:,.1f} / {beside:,.1f} moves/s ({beside / without - 1:+.0%}),"
            f" {live['move_errors_with_subscribers']} errors",
            "at most -10%",
        )
        row(
            "live updates: memory per open subscription; subscriptions the servers ended",
            f"{live['live_kb_per_subscription']} KB; {sum(live['live_ended'].values())} {live['live_ended'] or ''}",
            "recorded; none",
        )
        row("seed", f"{seed_seconds:.0f} s", "<= 600 s")
        row("server RSS under load (peak)", f"{server_rss:.0f} MB", "< 200 MB")
        row("data", f"{counts['incidents']:,} incidents, {counts['alerts']:,} alerts", "")

        width = max(len(t[0]) for t in table)
        print(
            f"incident-graph benchmark, {scale_name} scale, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC,"
            f" {os.cpu_count()} cores, {WORKERS} workers, {time.monotonic() - started:.0f} s"
        )
        print(f"| {'what'.ljust(width)} | measured | target |")
        print(f"|{'-' * (width + 2)}|---|---|")
        for what, value, target in table:
            print(f"| {what.ljust(width)} | {value} | {target} |")
        print(f"\ndatabase: {asyncio.run(database.age(db_url))}")
        print("what PostgreSQL did during each timed phase (tests/bench/pgactivity.py):")
        for phase, w in during.items():
            print(f"- {phase} ({w.seconds:.0f} s): {w.summary()}")
        assert list(final) == JSON_KEYS
        print(json.dumps(final))
    finally:
        if postgraphile is not None:
            postgraphile.stop()
        if floor_proc is not None:
            stop(floor_proc)
        server.stop()


def measure_writes(
    api: str,
    token: str,
    data: bench_inputs.Inputs,
    scale: Scale,
    activity: pgactivity.Activity,
    during: dict[str, pgactivity.Window],
) -> tuple[dict[int, list[float]], dict, list[float], str]:
    """linkAlerts of 100 and 1,000 alerts (then reverted, untimed), the 16 movers, then
    ingestAlerts in batches of 500: each request's milliseconds (linkAlerts, ingestAlerts), the
    movers' wrk figures, the run id."""
    log("linkAlerts, 100 and 1,000 alerts, one after another")
    link: dict[int, list[float]] = {}
    linked: list[dict] = []  # the moves' payloads, warm-ups included
    with httpx.Client(timeout=60) as client:
        try:
            for size, sets_ in data.link_sets.items():
                requests = [
                    link_request(ids, data.link_targets[n % len(data.link_targets)]) for n, ids in enumerate(sets_)
                ]
                timed_mutations(client, api, token, requests[:1], linked)  # warm-up
                with activity.window() as during[f"linkAlerts {size}"]:
                    link[size] = timed_mutations(client, api, token, requests[1:], linked)
        finally:
            # Untimed, and whatever failed: each link reverted, newest first, so that the next
            # run finds the alerts back in their small incidents and no targets of a thousand
            # alerts at the top of the queue (where the typeahead's evidence walk would read
            # them: issue 16).
            log(f"reverting the {len(linked)} linkAlerts moves (untimed)")
            for payload in reversed(linked):
                merges.revert(client, api, token, payload["move"]["id"])

    log("16 clients moving 1-10 overlapping alerts")
    with activity.window() as during["16 movers"]:
        moves = movers(api, token, data, scale.seconds)

    log("ingestAlerts, batches of 500")
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    batches = ingest_batches(data.ingest_entities, scale.ingest_batches, run_id)
    with httpx.Client(timeout=120) as client:
        timed_mutations(client, api, token, [(INGEST, {"alerts": batches[0]})])  # warm-up
        with activity.window() as during["ingestAlerts"]:
            ingest_ms = timed_mutations(client, api, token, [(INGEST, {"alerts": b}) for b in batches[1:]])

    return link, moves, ingest_ms, run_id


def main_writes(db_url: str) -> None:
    """The writes' measurements of `make bench` alone (measure_writes, after the same vacuum), at
    the full scale's settings, on a seeded database of any size: repeat it to see how the writes'
    figures hold as the database ages (issue 18)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench-deps` installs it (Debian package wrk)")
    scale = SCALES["full"]
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs=scale.link_runs))
    workdir = Path(tempfile.mkdtemp(prefix="bench-writes-", dir=ROOT / ".data"))
    asyncio.run(database.anchor_index(db_url, present=False))  # as make bench's writes run: without it
    log("vacuuming what the writes touch, then a checkpoint")
    asyncio.run(database.vacuum_written(db_url, log=log))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    during: dict[str, pgactivity.Window] = {}
    try:
        server.wait_healthy()
        with pgactivity.Activity(db_url) as activity:
            link, moves, ingest_ms, _ = measure_writes(server.url, token, data, scale, activity, during)
    finally:
        server.stop()
    figures = {
        **write_figures(link, moves, ingest_ms),
        "link_100_slowest": slowest(link[100]),
        "postgres_during": {phase: w.as_json() for phase, w in during.items()},
    }
    print(json.dumps(figures))


def write_figures(link: dict[int, list[float]], moves: dict, ingest_ms: list[float]) -> dict:
    """measure_writes' JSON keys: linkAlerts' p95s, the movers' rate and errors, ingestion's rate."""
    return {
        "link_100_p95_ms": round(percentile(link[100], 95), 1),
        "link_1000_p95_ms": round(percentile(link[1000], 95), 1),
        "moves_per_s": round(moves["rps"], 1),
        "move_errors": move_errors(moves),
        "ingest_alerts_per_s": round(500 * len(ingest_ms) / (sum(ingest_ms) / 1000)),
    }


def main_movers(db_url: str) -> None:
    """The 16 movers alone, on a seeded database of any size: a server of this checkout, 5 s of
    warm-up, then three runs of 10 s, their moves a second on one line. Run it from two
    checkouts in turn to compare their moves (issue 18)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench-deps` installs it (Debian package wrk)")
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs=SCALES["full"].link_runs))
    workdir = Path(tempfile.mkdtemp(prefix="bench-movers-", dir=ROOT / ".data"))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    try:
        server.wait_healthy()
        movers(server.url, token, data, 5)
        runs = [movers(server.url, token, data, 10) for _ in range(3)]
    finally:
        server.stop()
    print(json.dumps({"moves_per_s": [round(r["rps"], 1) for r in runs], "move_errors": sum(map(move_errors, runs))}))


SEARCHING_CLASSES = ("host", "host part", "email", "email part", "file")
PENDING_PAGES = """
SELECT c.relname, gin_clean_pending_list(c.oid) FROM pg_class c
 JOIN pg_index x ON x.indexrelid = c.oid JOIN pg_am am ON am.oid = c.relam
 WHERE am.amname = 'gin' AND c.relnamespace = current_schema()::regnamespace ORDER BY c.relname
"""


async def merge_pending_pages(db_url: str) -> dict[str, int]:
    """Merges every GIN index's pending list; the pages each held."""
    conn = await asyncpg.connect(db_url)
    try:
        return {r[0]: r[1] for r in await conn.fetch(PENDING_PAGES)}
    finally:
        await conn.close()


def main_searching(db_url: str) -> None:
    """A SOC's afternoon in miniature (issue 18): the 16 movers for SECONDS_MOVING seconds
    (default 40), and, from 30% of the way in, one connection typing the mix's hosts, emails and
    files over and over until they stop, from a server of this checkout. Prints the GIN indexes'
    pending pages before (merged, so that each run starts alike) and right after, and a JSON
    line: the typeahead's p50, p95 and p99 (ms) and the moves a second. Run it from two
    checkouts in turn to compare them."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench-deps` installs it (Debian package wrk)")
    seconds = int(os.environ.get("SECONDS_MOVING", "40"))
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs=SCALES["full"].link_runs))
    typed = [q for q, c in zip(data.mix, data.mix_classes, strict=True) if c in SEARCHING_CLASSES]
    bodies = [{"query": TYPEAHEAD, "variables": {"q": q}} for q in typed]
    workdir = Path(tempfile.mkdtemp(prefix="bench-searching-", dir=ROOT / ".data"))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    try:
        server.wait_healthy()
        print("pending pages before (merged):", asyncio.run(merge_pending_pages(db_url)), flush=True)
        one_connection(server.url, token, bodies, 0)  # its warm-up pass
        moved: dict = {}
        moving = threading.Thread(target=lambda: moved.update(movers(server.url, token, data, seconds)))
        moving.start()
        time.sleep(seconds * 0.3)
        latencies: list[float] = []
        errors = 0
        while moving.is_alive():
            by_input, failed = one_connection(
                server.url, token, bodies, 1, warm_up=False, until=lambda: not moving.is_alive()
            )
            latencies += [x for each in by_input for x in each]
            errors += failed
        moving.join()
        if "rps" not in moved:
            sys.exit("the movers failed (wrk): see above")
        if not latencies:
            sys.exit(f"no request typed while the movers ran: SECONDS_MOVING={seconds} is too short")
        print("pending pages after:", asyncio.run(merge_pending_pages(db_url)), flush=True)
    finally:
        server.stop()
    figures = {f"typeahead_p{p}_ms": round(percentile(latencies, p), 1) for p in (50, 95, 99)}
    print(
        json.dumps(
            {
                "typeahead_requests": len(latencies),
                **figures,
                "typeahead_errors": errors,
                "moves_per_s": round(moved["rps"], 1),
                "move_errors": move_errors(moved),
            }
        )
    )


def main_merges(db_url: str) -> None:
    """The merges' measurements alone, at the small scale's settings, on a seeded database of any
    size (one of your own: it ingests 10,000 alerts and moves the movers' pool around)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench-deps` installs it (Debian package wrk)")
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs={}))
    workdir = Path(tempfile.mkdtemp(prefix="bench-merges-", dir=ROOT / ".data"))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    try:
        server.wait_healthy()
        run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        merged = measure_merges(server.url, token, data, SCALES["small"], run_id)
    finally:
        server.stop()
    width = max(len(row[0]) for row in merge_rows(merged))
    for what, value, target in merge_rows(merged):
        print(f"| {what.ljust(width)} | {value} | {target} |")
    print(json.dumps(merge_figures(merged)))


def main_live(db_url: str) -> None:
    """Live updates' measurements (tests/bench/live.py) on a seeded database of any size: the movers'
    rate without and with LIVE_SUBSCRIPTIONS open subscriptions on two server processes, the time
    from a move through one process to its change on a subscriber of the other, and memory."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench-deps` installs it (Debian package wrk)")
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs={}))
    figures = measure_live(db_url, token, data)
    for key, value in figures.items():
        print(f"| {key} | {value} |")
    print(json.dumps(figures))


def measure_live(db_url: str, token: str, data: bench_inputs.Inputs) -> dict:
    """The live updates' figures (tests/bench/live.py), LIVE_SECONDS (20) of movers each side."""
    seconds = int(os.environ.get("LIVE_SECONDS", "20"))
    alert, home, other = asyncio.run(bench_live.probe_pair(db_url, data.move_alerts, data.move_targets))
    incidents = asyncio.run(_incident_sample(db_url, 5000))
    workdir = Path(tempfile.mkdtemp(prefix="bench-live-", dir=ROOT / ".data"))
    env = {"WEB_CONCURRENCY": "1", "LIVE_MAX_SUBSCRIPTIONS": str(bench_live.SUBSCRIPTIONS + 100)}
    a = Server(db_url, workdir / "server-a.log", env=env)
    b = Server(db_url, workdir / "server-b.log", env=env)
    subs = bench_live.Subscribers()
    try:
        a.wait_healthy()
        b.wait_healthy()
        pids = [a.proc.pid, b.proc.pid]
        log(f"live: the 16 movers through A for {seconds:g} s, no subscription open")
        alone = movers(a.url, token, data, seconds)
        rss_before = bench_live.rss_mb(pids)
        log(f"live: opening {bench_live.SUBSCRIPTIONS} subscriptions ({bench_live.QUEUE_SUBSCRIPTIONS} queue-wide)")
        ws = [s.url.replace("http://", "ws://") + "/graphql" for s in (a, b)]
        thread = threading.Thread(
            target=bench_live.run_subscribers, args=(*ws, token, incidents, [home, other], subs), daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 300
        while not subs.opened.wait(1):
            if not thread.is_alive():  # it failed (its traceback is above): no use waiting
                sys.exit("live: the subscriptions could not be opened")
            if time.monotonic() > deadline:
                sys.exit("live: the subscriptions did not open within 5 minutes")
        rss_open = bench_live.rss_mb(pids)
        log("live: the movers again, with the probe moving through A and its subscriber on B")
        probe: dict = {}
        prober = threading.Thread(
            target=lambda: probe.update(
                zip(
                    ("to_event", "answered"),
                    bench_live.probe_moves(a.url, token, alert, (home, other), subs, seconds, db_url),
                    strict=True,
                )
            )
        )
        prober.start()
        beside = movers(a.url, token, data, seconds)
        prober.join()
        rss_peak = bench_live.rss_mb(pids)
        subs.stop.set()
        thread.join(90)  # it adds the load process's counts once that process has stopped
        if subs.failed is not None or thread.is_alive():
            raise RuntimeError(f"live: the subscriptions failed: {subs.failed or 'they did not stop'}")
        to_event, answered = probe["to_event"], probe["answered"]
        figures = {
            "live_subscriptions": bench_live.SUBSCRIPTIONS,
            "live_queue_subscriptions": bench_live.QUEUE_SUBSCRIPTIONS,
            "live_move_to_event_p50_ms": round(percentile(to_event, 50), 1) if to_event else None,
            "live_move_to_event_p95_ms": round(percentile(to_event, 95), 1) if to_event else None,
            "live_probe_move_p95_ms": round(percentile(answered, 95), 1) if answered else None,
            "live_commit_to_event_p50_ms": round(percentile(subs.commit_to_event, 50), 1)
            if subs.commit_to_event
            else None,
            "live_commit_to_event_p95_ms": round(percentile(subs.commit_to_event, 95), 1)
            if subs.commit_to_event
            else None,
            "live_commits_probed": len(subs.commit_to_event),
            "live_probe_moves": len(answered),
            "live_probe_events_missing": len(answered) - len(to_event),
            "moves_without_subscribers_per_s": round(alone["rps"], 1),
            "moves_with_subscribers_per_s": round(beside["rps"], 1),
            "move_errors_with_subscribers": move_errors(beside),
            "live_events_received": subs.events,
            "live_ended": subs.ended,
            "live_rss_before_mb": round(rss_before, 1),
            "live_rss_open_mb": round(rss_open, 1),
            "live_rss_peak_mb": round(rss_peak, 1),
            "live_kb_per_subscription": round((rss_open - rss_before) * 1024 / bench_live.SUBSCRIPTIONS, 1),
        }
    finally:
        subs.stop.set()
        a.stop()
        b.stop()
    return figures


async def _incident_sample(db_url: str, n: int) -> list[int]:
    conn = await asyncpg.connect(db_url)
    try:
        top = await conn.fetchval("SELECT max(id) FROM incidents")
        return [
            r["id"]
            for r in await conn.fetch("SELECT id FROM incidents WHERE id > $1 LIMIT $2", max(0, top - 10 * n), n)
        ]
    finally:
        await conn.close()


async def _counts(db_url: str) -> dict:
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM incidents) AS incidents, (SELECT count(*) FROM alerts) AS alerts"
        )
        return dict(row)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
