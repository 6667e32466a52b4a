"""Where a cheap typeahead request's CPU goes, layer by layer: our server, its floor and
PostGraphile side by side (issue 19).

    python -m tests.bench.profile [small|full]      (make bench-profile SCALE=small)

On the benchmark's database (tests/bench/database.py), with the same processes as `make bench`
(the server and the floor with one worker per core, PostGraphile with one Node process), each
target in turn takes the cheap inputs from wrk (8 connections) for SECONDS while:
- py-spy (pinned in tests/bench/profile-requirements.txt, installed into .venv-profile) samples
  the Python processes, and `node --cpu-prof` PostGraphile's;
- psutil reads the CPU time of the target's processes and of PostgreSQL's.
Each layer's share of the samples is applied to the processes' CPU time and divided by the
requests served: milliseconds of CPU per request. A sample is the layer of its innermost frame
that belongs to one (a stdlib frame such as `re` counts for whoever called it).

Profiling costs CPU itself: compare the columns with each other, not with `make bench`'s rates.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import asyncpg
import psutil

from app.config import ROOT
from tests.bench import database
from tests.bench import inputs as bench_inputs
from tests.bench import postgraphile as bench_postgraphile
from tests.bench.run import SCALES, TYPEAHEAD, WORKERS, bodies_file, log, make_token, start_floor, stop, wrk
from tests.live import Server

SECONDS = 10
PY_SPY = ROOT / ".venv-profile" / "bin" / "py-spy"
RATE = 200  # py-spy samples per second and process

# Innermost frame first: the first layer whose pattern is in a frame's file names the sample.
PYTHON_LAYERS = [
    ("token check (app/token_cache.py, users)", ("app/token_cache.py", "app/domain/users.py")),
    ("driver (asyncpg)", ("asyncpg/",)),
    ("domain and SQL building (app/domain)", ("app/domain/",)),
    ("GraphQL (strawberry, graphql-core, app/api)", ("strawberry/", "graphql/", "app/api/", "cross_web/")),
    ("JSON (orjson, json)", ("orjson", "/json/")),
    ("metrics and logs", ("prometheus_client/", "app/observe.py", "app/metrics.py", "app/logs.py", "/logging/")),
    ("HTTP (uvicorn, starlette)", ("uvicorn/", "starlette/", "h11/", "httptools/")),
    ("server glue (app/server.py, the floor's route)", ("app/server.py", "app/db.py", "tests/bench/floor.py")),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop/", "selectors.py")),
]
NODE_LAYERS = [
    ("token check (jsonwebtoken)", ("jsonwebtoken/", "/jws/", "/jwa/", "crypto")),
    ("driver and SQL (@dataplan/pg, pg)", ("@dataplan/pg/", "/pg/", "pg-protocol/", "pg-types/", "pg-sql2/")),
    ("GraphQL execution (grafast)", ("grafast/", "@dataplan/json/")),
    ("GraphQL parse and validate (graphql-js)", ("/graphql/",)),
    ("GraphQL over HTTP (grafserv)", ("grafserv/", "postgraphile/", "graphile-config/")),
    ("HTTP and sockets (node:http, net)", ("node:_http", "node:http", "node:net", "node:internal/http", "node:stream")),
]
NODE_RUNTIME = {"(garbage collector)": "garbage collection", "(program)": "V8 and libuv (program)"}


def python_layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for layer, patterns in PYTHON_LAYERS:
            if any(p in frame for p in patterns):
                return layer
    return "other"


def python_shares(raw_files: list[Path]) -> Counter:
    """Samples per layer from py-spy's raw output (one collapsed stack and its count a line)."""
    samples: Counter = Counter()
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                samples[python_layer(stack.split(";"))] += int(count)
    return samples


def node_shares(profiles: list[Path], window: tuple[float, float]) -> Counter:
    """Samples per layer from V8 .cpuprofile files, those taken within the window (time.monotonic()
    seconds: V8 stamps samples in microseconds of the same clock on Linux) and not idle."""
    samples: Counter = Counter()
    start, end = window[0] * 1e6, window[1] * 1e6
    for path in profiles:
        profile = json.loads(path.read_text())
        nodes = {n["id"]: n for n in profile["nodes"]}
        layer_of = _node_layers(profile["nodes"])
        stamp = profile["startTime"]
        for node_id, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
            stamp += delta
            if start <= stamp <= end and nodes[node_id]["callFrame"]["functionName"] != "(idle)":
                samples[layer_of[node_id]] += 1
    return samples


def _node_layers(nodes: list[dict]) -> dict[int, str]:
    """Each node's layer: its own frame's, else its caller's (the root's children first)."""
    by_id = {n["id"]: n for n in nodes}
    children = {c for n in nodes for c in n.get("children", ())}
    layer_of: dict[int, str] = {}
    pending = [(n["id"], "other") for n in nodes if n["id"] not in children]
    while pending:
        node_id, inherited = pending.pop()
        frame = by_id[node_id]["callFrame"]
        name, url = frame["functionName"], frame["url"]
        own = NODE_RUNTIME.get(name) or next((lay for lay, pats in NODE_LAYERS if any(p in url for p in pats)), None)
        layer_of[node_id] = own or inherited
        pending.extend((c, layer_of[node_id]) for c in by_id[node_id].get("children", ()))
    return layer_of


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


async def postmaster(db_url: str) -> psutil.Process | None:
    """PostgreSQL's postmaster, when it runs on this machine."""
    conn = await asyncpg.connect(db_url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        return psutil.Process(psutil.Process(backend).ppid())  # while the backend lives
    except psutil.Error:
        return None
    finally:
        await conn.close()


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def measure(
    url: str, path: str, bodies: str, token: str, processes: list[psutil.Process], pg: psutil.Process | None
) -> dict:
    env = {"BENCH_BODIES": bodies, "BENCH_PATH": path, "BENCH_TOKEN": token, "BENCH_CHECK": "1"}
    wrk(url, "bodies.lua", seconds=2, connections=8, env=env)  # warm-up
    pg_processes = tree(pg.pid) if pg else []
    before, pg_before, started = cpu_seconds(processes), cpu_seconds(pg_processes), time.monotonic()
    result = wrk(url, "bodies.lua", seconds=SECONDS, connections=8, env=env)
    after, pg_after, ended = cpu_seconds(processes), cpu_seconds(pg_processes), time.monotonic()
    errors = result["errors"] + result["socket_errors"] + result["non_2xx"]
    if errors:
        raise RuntimeError(f"{url}{path}: {errors} errors under load")
    return {
        "requests": result["requests"],
        "rps": result["rps"],
        "cpu_ms": (after - before) * 1000 / result["requests"],
        "pg_cpu_ms": (pg_after - pg_before) * 1000 / result["requests"] if pg else None,
        "window": (started, ended),
    }


def py_spy(pid: int, output: Path, stderr: Path) -> subprocess.Popen:
    with stderr.open("wb") as err:  # the child keeps its own copy
        return subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--nonblocking",
                "--rate",
                str(RATE),
                "--duration",
                str(SECONDS + 3),
                "--format",
                "raw",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def py_spy_samples(spy: subprocess.Popen, raw: Path, stderr: Path) -> Counter:
    """The samples py-spy recorded, once it has finished; what it said, if it failed."""
    try:
        code = spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        code = spy.wait()
    samples = python_shares([raw]) if raw.exists() else Counter()
    if code != 0 or not samples:
        said = stderr.read_text(errors="replace").strip() or "nothing on stderr"
        raise RuntimeError(
            f"py-spy exited with {code} and {sum(samples.values())} samples: {said}"
            " (to attach, py-spy needs ptrace: root, CAP_SYS_PTRACE or kernel.yama.ptrace_scope=0)"
        )
    return samples


def by_layer(shares: Counter, cpu_ms: float) -> dict[str, float]:
    total = sum(shares.values()) or 1
    return {layer: cpu_ms * n / total for layer, n in shares.most_common()}


def main() -> None:
    scale_name = (sys.argv[1] if len(sys.argv) > 1 else "small").lower()
    scale = SCALES[scale_name]
    if not PY_SPY.exists():
        sys.exit("py-spy is not installed: `make bench-profile` installs it into .venv-profile")
    db_url, _ = asyncio.run(database.prepare(scale.incidents, log=log))
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs={}))
    asyncio.run(bench_postgraphile.install_functions(db_url))
    asyncio.run(database.anchor_index(db_url, present=True))
    try:
        results, workdir = profile(db_url, token, data.cheap)
    finally:
        asyncio.run(database.anchor_index(db_url, present=False))

    print(f"CPU per cheap typeahead request, {scale_name} scale, {WORKERS} workers; profiles in {workdir}")
    for name, r in results.items():
        pg_part = f", PostgreSQL {r['pg_cpu_ms']:.2f} ms" if r["pg_cpu_ms"] is not None else ""
        print(f"\n{name}: {r['rps']:,.0f} rps while profiled; its processes {r['cpu_ms']:.2f} ms a request{pg_part}")
        for layer, ms in r["layers"].items():
            print(f"  {layer:<50} {ms:6.3f} ms")
    print(json.dumps(results))


def profile(db_url: str, token: str, cheap: list[str]) -> tuple[dict[str, dict], Path]:
    pg = asyncio.run(postmaster(db_url))
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-", dir=ROOT / ".data"))
    graphql_bodies = bodies_file(workdir, "graphql.jsonl", [{"query": TYPEAHEAD, "variables": {"q": q}} for q in cheap])
    floor_bodies = bodies_file(workdir, "floor.jsonl", [{"q": q} for q in cheap])
    pgl_bodies = bodies_file(workdir, "postgraphile.jsonl", [bench_postgraphile.body(q) for q in cheap])
    results: dict[str, dict] = {}

    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    floor_proc = None
    try:
        server.wait_healthy()
        floor_proc, floor = start_floor(db_url, workdir / "floor.log")
        for name, (url, path, bodies, pid) in {
            "server": (server.url, "/graphql", graphql_bodies, server.proc.pid),
            "floor": (floor, "/floor", floor_bodies, floor_proc.pid),
        }.items():
            log(f"profiling {name} on the cheap inputs for {SECONDS} s (py-spy)")
            raw, spy_log = workdir / f"{name}.raw", workdir / f"{name}.py-spy.log"
            spy = py_spy(pid, raw, spy_log)
            try:
                time.sleep(1)  # py-spy attached
                measured = measure(url, path, bodies, token, tree(pid), pg)
            except BaseException:
                spy.kill()
                spy.wait()
                raise
            del measured["window"]
            measured["layers"] = by_layer(py_spy_samples(spy, raw, spy_log), measured["cpu_ms"])
            results[name] = measured
    finally:
        if floor_proc is not None:
            stop(floor_proc)
        server.stop()

    profiles = workdir / "node-profiles"
    postgraphile = bench_postgraphile.PostGraphile(
        db_url,
        workdir / "postgraphile.log",
        node_options=("--cpu-prof", f"--cpu-prof-dir={profiles}"),
        log=log,
    )
    try:
        postgraphile.wait_ready()
        jwt = bench_postgraphile.viewer_token(
            postgraphile.secret, asyncio.run(bench_postgraphile.user_id(db_url, "bench"))
        )
        log(f"profiling PostGraphile on the cheap inputs for {SECONDS} s (node --cpu-prof)")
        measured = measure(postgraphile.url, "/graphql", pgl_bodies, jwt, tree(postgraphile.proc.pid), pg)
    finally:
        postgraphile.stop()
    shares = node_shares(sorted(profiles.glob("*.cpuprofile")), measured.pop("window"))
    if not shares:
        raise RuntimeError("no sample of node's profile falls in the measurement's window")
    measured["layers"] = by_layer(shares, measured["cpu_ms"])
    results["postgraphile"] = measured
    return results, workdir


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
