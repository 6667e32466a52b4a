"""The cost of a checkpoint to the writes that follow it (issue 18's evidence).

    python -m tests.bench.fpi [full|small]

Moves the same 19 sets of 100 alerts (the bench's linkAlerts inputs) back and forth, one move
at a time: right after a CHECKPOINT, then again with no checkpoint in between (the pages the
first round touched are already in the WAL since the checkpoint), then after a CHECKPOINT
again. Prints each round's p50/p95 and WAL written per moved alert.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import asyncpg
import httpx

from app.config import ROOT
from app.domain.ids import ALERT, INCIDENT, typed_id
from tests.bench import database
from tests.bench import inputs as bench_inputs
from tests.bench.run import LINK, SCALES, WORKERS, make_token, percentile, timed_mutations
from tests.live import Server


async def wal(url: str, checkpoint: bool = False) -> int:
    conn = await asyncpg.connect(url)
    try:
        if checkpoint:
            await conn.execute("CHECKPOINT")
        return int(await conn.fetchval("SELECT wal_bytes FROM pg_stat_wal"))
    finally:
        await conn.close()


def main() -> None:
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
                requests = [
                    (LINK, {"ids": [typed_id(ALERT, a) for a in ids], "to": typed_id(INCIDENT, targets[k])})
                    for k, ids in enumerate(sets)
                ]
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
