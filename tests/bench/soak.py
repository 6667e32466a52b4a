"""The soak benchmark, `make soak`: a compressed SOC day on the full-scale database.

    python -m tests.bench.soak [full|small]        # SOAK_MINUTES (default 15), SOAK_PLOT

For a fixed, bounded time, all at once and each at a steady rate:
- ingestion: batches of alerts as a detection source sends them (half correlate with recent ones);
- analysts moving 1 to 10 alerts into another incident (linkAlerts), the same pool as `make bench`;
- analysts opening incidents (the console's detail query);
- the typeahead, over the realistic mix.

Each load is open-loop (the next request is due at a fixed time whether or not the last has
answered, with a bounded number in flight), and a request's latency counts from when it was due,
so a stall shows as late requests and a lower throughput in its minute rather than as a pause
the generator politely waits out (wrk2's coordinated-omission correction). Every minute it
prints each load's throughput and p50/p95/p99 and what PostgreSQL did (tests/bench/pgactivity.py);
at the end a JSON line, and a PNG of the minutes drawn with matplotlib (installed into a venv of
its own, .venv-plot, so that the product does not depend on it).

The targets (issue 18): no minute's ingestion or move throughput below 80% of the first full
minute's, and no minute's p95 for moves, detail or typeahead above 1.5 times the first's.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from app.config import ROOT
from app.domain.ids import ALERT, INCIDENT, typed_id
from tests.bench import database, pgactivity
from tests.bench import inputs as bench_inputs
from tests.bench.run import (
    INGEST,
    SCALES,
    TYPEAHEAD,
    WORKERS,
    RssSampler,
    alert_batches,
    log,
    make_token,
    percentile,
)
from tests.documents import DETAIL
from tests.live import Server

MOVE = (
    "mutation($ids: [ID!]!, $to: ID!) { linkAlerts(alertIds: $ids, target: {existingIncidentId: $to},"
    ' comment: "soak: an analyst regroups") { targetIncident { id alertCount } errors { code message } } }'
)


@dataclass(frozen=True)
class Load:
    name: str
    per_second: float  # requests due per second
    in_flight: int  # at most this many sent and unanswered; the rest wait (and count as late)
    unit: int = 1  # what one request carries (alerts per ingest batch), for the throughput


def loads() -> list[Load]:
    """The day's mix, each rate from the environment (SOAK_<NAME>_PER_S) or these defaults: about
    a tenth of what each load alone reaches on the benchmark's machine (2,000 alerts/s, 200
    moves/s, 400 searches/s, 90 incident pages/s at one connection), so that together, with
    the generator, they use about half of its two cores: at a steady state every minute serves
    what is due, and a stall is what shows. 200 alerts/s is 17 million a day."""
    batch = int(os.environ.get("SOAK_INGEST_BATCH", "100"))

    def rate(name: str, default: float) -> float:
        return float(os.environ.get(f"SOAK_{name.upper()}_PER_S", default))

    return [
        Load("ingest", rate("ingest", 200) / batch, in_flight=2, unit=batch),
        Load("moves", rate("moves", 20), in_flight=8),
        Load("detail", rate("detail", 5), in_flight=4),
        Load("typeahead", rate("typeahead", 40), in_flight=8),
    ]


@dataclass
class Minute:
    """The requests of one load that completed in one minute: latencies from when each was due."""

    latencies: list[float] = field(default_factory=list)
    units: int = 0
    errors: int = 0
    late: int = 0  # waited for a slot because `in_flight` were unanswered
    dropped: int = 0  # not sent: BACKLOG times `in_flight` were waiting already


# How far behind a load may fall (requests due and not yet sent, per slot) before it drops what
# falls due: a stalled server must not make the generator hold minutes of requests in memory.
BACKLOG = 50


class Generator:
    """One load: a request due every 1/per_second seconds, from `start` until `end`."""

    def __init__(self, load: Load, client: httpx.AsyncClient, token: str, body, path: str = "/graphql") -> None:
        self.load = load
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.body = body  # () -> the JSON body of the next request
        self.path = path
        # How late each request started on the generator's own event loop (ms): when that grows,
        # the generator, not the server, is what falls behind.
        self.start_lag_ms: list[float] = []
        self.slots = asyncio.Semaphore(load.in_flight)
        self.minutes: dict[int, Minute] = {}
        self.tasks: set[asyncio.Task] = set()
        self.first_error: str | None = None
        self.answered: list[tuple[float, float]] = []  # (due, latency in ms) of each answered request

    async def run(self, start: float, end: float, minute_of) -> None:
        interval = 1 / self.load.per_second
        n = 0
        while (due := start + n * interval) < end:
            n += 1
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(self.tasks) >= BACKLOG * self.load.in_flight:  # far behind: this one is dropped
                self.minutes.setdefault(minute_of(time.monotonic()), Minute()).dropped += 1
                continue
            task = asyncio.create_task(self._one(due, minute_of))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=60)
        for task in list(self.tasks):  # still unanswered a minute after the end: not counted
            task.cancel()

    async def _one(self, due: float, minute_of) -> None:
        self.start_lag_ms.append((time.monotonic() - due) * 1000)
        late = self.slots.locked()
        async with self.slots:
            ok = False
            try:
                response = await self.client.post(self.path, json=self.body(), headers=self.headers)
                body = response.json()
                payload = next(iter((body.get("data") or {}).values()), None) or {}
                ok = response.status_code == 200 and not body.get("errors") and not payload.get("errors")
                if not ok and self.first_error is None:
                    self.first_error = response.text[:500]
            except (httpx.HTTPError, ValueError) as exc:
                if self.first_error is None:
                    self.first_error = repr(exc)
        done = time.monotonic()
        minute = self.minutes.setdefault(minute_of(done), Minute())
        minute.late += late
        if ok:
            minute.latencies.append((done - due) * 1000)
            self.answered.append((due, (done - due) * 1000))
            minute.units += self.load.unit
        else:
            minute.errors += 1


# What PostgreSQL's backends are doing, sampled every SAMPLE_S: in the soak's worst second of each
# minute (a stall: every load's requests waiting at once), what they were waiting for, and on what.
SAMPLE_S = 0.2
ACTIVE = """
SELECT backend_type, coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait,
       regexp_replace(left(query, 70), '\\s+', ' ', 'g') AS query
  FROM pg_stat_activity
 WHERE pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'
   AND backend_type IN ('client backend', 'autovacuum worker', 'checkpointer', 'walwriter')
   AND (backend_type <> 'client backend' OR state = 'active')
   AND wait_event_type IS DISTINCT FROM 'Activity'  -- a background process waiting for work
"""


class Backends:
    """pg_stat_activity sampled on a connection of its own, with the time of each sample."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, list[tuple[str, str, str]]]] = []

    async def run(self, db_url: str, until: float) -> None:
        conn = await asyncpg.connect(db_url)
        try:
            while time.monotonic() < until:
                rows = await conn.fetch(ACTIVE)
                self.samples.append((time.monotonic(), [(r["backend_type"], r["wait"], r["query"]) for r in rows]))
                await asyncio.sleep(SAMPLE_S)
        finally:
            await conn.close()

    def during(self, start: float, end: float) -> dict:
        """The commonest (backend, wait, statement) between start and end, and how many samples."""
        counts: dict[str, int] = {}
        taken = [rows for t, rows in self.samples if start <= t < end]
        for rows in taken:
            for backend, wait, query in rows:
                who = "autovacuum" if backend == "autovacuum worker" else backend.split()[0]
                key = f"{who} {wait} {query}".strip()
                counts[key] = counts.get(key, 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
        return {"samples": len(taken), "top": [{"seen": n, "what": k} for k, n in top]}


def worst_second(generators: dict[str, Generator], start: float, backends: Backends) -> dict | None:
    """The second of the minute from `start` whose requests (of every load, by when each was due)
    waited longest at the median, and what PostgreSQL was doing in it and in the second before."""
    by_second: dict[int, list[float]] = {}
    for g in generators.values():
        for due, ms in g.answered:
            if start <= due < start + 60:
                by_second.setdefault(int(due - start), []).append(ms)
    ranked = [(percentile(v, 50), s, len(v)) for s, v in by_second.items() if len(v) >= 5]
    if not ranked:
        return None
    median, second, n = max(ranked)
    return {
        "second": second,
        "median_ms": round(median, 1),
        "requests": n,
        "postgres": backends.during(start + second - 1, start + second + 1),
    }


def figures(load: Load, m: Minute | None, seconds: float) -> dict:
    if m is None or not m.latencies:
        return {
            "per_s": 0.0,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
            "errors": m.errors if m else 0,
            "late": m.late if m else 0,
            "dropped": m.dropped if m else 0,
        }
    return {
        "per_s": round(m.units / seconds, 1),
        "p50_ms": round(percentile(m.latencies, 50), 1),
        "p95_ms": round(percentile(m.latencies, 95), 1),
        "p99_ms": round(percentile(m.latencies, 99), 1),
        "errors": m.errors,
        "late": m.late,
        "dropped": m.dropped,
    }


def verdict(rows: list[dict]) -> dict:
    """The issue's targets over the minutes, against the first full minute."""
    first = rows[0]["loads"]
    out = {}
    for name in ("ingest", "moves"):
        lowest = min(r["loads"][name]["per_s"] for r in rows)
        out[f"{name}_lowest_vs_first"] = round(lowest / first[name]["per_s"], 2) if first[name]["per_s"] else None
    for name in ("moves", "detail", "typeahead"):
        p95s = [r["loads"][name]["p95_ms"] for r in rows]
        # A minute that answered nothing fails the target; it has no ratio to print (None).
        worst = None if None in p95s else max(p95s)
        out[f"{name}_p95_worst_vs_first"] = (
            round(worst / first[name]["p95_ms"], 2) if worst and first[name]["p95_ms"] else None
        )
    out["errors"] = sum(f["errors"] for r in rows for f in r["loads"].values())
    out["dropped"] = sum(f["dropped"] for r in rows for f in r["loads"].values())
    ratios = {k: v for k, v in out.items() if k.endswith("_first")}
    out["met"] = (
        out["errors"] == 0
        and out["dropped"] == 0
        and all(v is not None and (v >= 0.8 if k.endswith("lowest_vs_first") else v <= 1.5) for k, v in ratios.items())
    )
    return out


async def soak(
    api: str, token: str, data: bench_inputs.Inputs, activity: pgactivity.Activity, minutes: int, db_url: str
) -> dict:
    rng = random.Random(11)
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    the_loads = {load.name: load for load in loads()}
    ingest = the_loads["ingest"]
    next_batch = alert_batches(data.ingest_entities, run_id, size=ingest.unit)
    moving = [typed_id(ALERT, a) for a in data.move_alerts]
    targets = [typed_id(INCIDENT, i) for i in data.move_targets]
    detail = [typed_id(INCIDENT, i) for i in data.detail_incidents]

    bodies = {
        "ingest": lambda: {"query": INGEST, "variables": {"alerts": next(next_batch)}},
        "moves": lambda: {
            "query": MOVE,
            "variables": {"ids": rng.sample(moving, rng.randint(1, 10)), "to": rng.choice(targets)},
        },
        "detail": lambda: {"query": DETAIL, "variables": {"id": rng.choice(detail)}},
        "typeahead": lambda: {"query": TYPEAHEAD, "variables": {"q": rng.choice(data.mix)}},
    }
    # Idle connections are dropped before uvicorn's keep-alive timeout (5 s) closes them under a
    # request being sent on them.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as client:
        generators = {name: Generator(the_loads[name], client, token, bodies[name]) for name in the_loads}
        warmup = 30.0
        start = time.monotonic()
        measured_from = start + warmup
        end = measured_from + minutes * 60

        def minute_of(t: float) -> int:
            return int((t - measured_from) // 60)  # -1: the warm-up

        runs = [asyncio.create_task(g.run(start, end, minute_of)) for g in generators.values()]
        backends = Backends()
        runs.append(asyncio.create_task(backends.run(db_url, end)))
        await asyncio.sleep(warmup)
        rows = []
        window = await asyncio.to_thread(activity.start_window)
        for m in range(minutes):
            await asyncio.sleep(max(0.0, measured_from + (m + 1) * 60 - time.monotonic()))
            # One minute's window ends where the next begins: nothing PostgreSQL does falls between.
            pg = await asyncio.to_thread(activity.end_window, window)
            window = await asyncio.to_thread(activity.start_window)
            row = {
                "minute": m + 1,
                "loads": {name: figures(g.load, g.minutes.get(m), 60) for name, g in generators.items()},
                "postgres": pg.as_json(),
            }
            rows.append(row)
            print_minute(row, pg)
        await asyncio.to_thread(activity.end_window, window)
        await asyncio.gather(*runs)
    # Judged once every request has been answered: those due in a minute's last seconds are.
    print("the worst second of each minute (a stall shows as every load waiting at once):")
    for row in rows:
        row["worst_second"] = worst_second(generators, measured_from + (row["minute"] - 1) * 60, backends)
        print_worst(row)
    errors = {name: g.first_error for name, g in generators.items() if g.first_error}
    return {"rows": rows, "errors": errors, "loads": {n: vars(load) for n, load in the_loads.items()}}


def print_minute(row: dict, pg: pgactivity.Window) -> None:
    parts = []
    for name, f in row["loads"].items():
        unit = "alerts/s" if name == "ingest" else "/s"
        p = "-" if f["p50_ms"] is None else f"{f['p50_ms']:.0f}/{f['p95_ms']:.0f}/{f['p99_ms']:.0f} ms"
        late = f" {f['late']} late" if f["late"] else ""
        late += f" {f['dropped']} dropped" if f["dropped"] else ""
        errors = f" {f['errors']} errors" if f["errors"] else ""
        parts.append(f"{name} {f['per_s']:,.1f}{unit} {p}{late}{errors}")
    print(f"minute {row['minute']:>2}: " + " | ".join(parts), flush=True)
    print(f"           postgres: {pg.summary()}", flush=True)


def print_worst(row: dict) -> None:
    worst = row["worst_second"]
    if worst is None:
        return
    seen = "; ".join(f"{t['what']} x{t['seen']}" for t in worst["postgres"]["top"]) or "nothing active"
    print(
        f"minute {row['minute']:>2} :{worst['second']:02d}: median {worst['median_ms']:.0f} ms over"
        f" {worst['requests']} requests; {worst['postgres']['samples']} samples of the 2 s around it: {seen}",
        flush=True,
    )


def plot(result: dict, path: Path) -> None:
    """The minutes as a PNG, drawn by matplotlib in .venv-plot (tests/bench/plot.py)."""
    python = ROOT / ".venv-plot" / "bin" / "python"
    if not python.exists():
        log("no .venv-plot: `make soak` installs matplotlib there; no plot drawn")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(result, f)
    subprocess.run([str(python), str(Path(__file__).with_name("plot.py")), f.name, str(path)], check=True)
    log(f"plot: {path}")


def main() -> None:
    scale_name = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SCALE") or "full").lower()
    scale = SCALES[scale_name]
    minutes = int(os.environ.get("SOAK_MINUTES", "15"))
    if not 1 <= minutes <= 120:
        sys.exit("SOAK_MINUTES: 1 to 120")
    db_url, _ = asyncio.run(database.prepare(scale.incidents, log=log))
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs={}))
    workdir = Path(tempfile.mkdtemp(prefix="soak-", dir=ROOT / ".data"))
    log("vacuuming what the writes touch, then a checkpoint, as `make bench` does before its writes")
    asyncio.run(database.vacuum_written(db_url, log=log))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    started = datetime.now(UTC)
    try:
        server.wait_healthy()
        rss = RssSampler(server.proc.pid)
        rates = ", ".join(f"{load.name} {load.per_second * load.unit:g}/s" for load in loads())
        log(f"soak: {minutes} minutes after a 30 s warm-up; due per second: {rates}")
        with pgactivity.Activity(db_url) as activity:
            result = asyncio.run(soak(server.url, token, data, activity, minutes, db_url))
        server_rss = rss.stop()
    finally:
        server.stop()
    result.update(
        scale=scale_name,
        started=f"{started:%Y-%m-%d %H:%M} UTC",
        verdict=verdict(result["rows"]),
        server_rss_mb=round(server_rss),
    )
    age = asyncio.run(database.age(db_url))
    print(f"database: {age}")
    print(f"verdict: {json.dumps(result['verdict'])}")
    if result["errors"]:
        print(f"errors (first of each load): {json.dumps(result['errors'])}")
    plot(result, Path(os.environ.get("SOAK_PLOT") or workdir / "soak.png"))
    print(json.dumps(result, separators=(",", ":"), allow_nan=False))


if __name__ == "__main__":
    main()
