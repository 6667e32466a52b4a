"""What a CPU load that is not the server's costs the 16 movers (issue 13's movers target).

    python -m tests.bench.burner DATABASE_URL [CORES]

One `incidents serve` process; the movers (moves.lua) for 20 s alone, then 20 s beside two
processes that each spin CORES/2 of a core (0.4 in all by default) in 10 ms slices, twice. The
movers are latency-bound under lock contention: what this costs them is the part of a drop the
machine explains, whatever takes the CPU (on 2 cores, 2026-12-03: -12% and -16% for 0.4 core).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

from app.config import ROOT
from tests.bench import inputs as bench_inputs
from tests.bench.run import make_token, movers
from tests.live import Server


def _spin(share: float, stop) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < 0.01 * share:
            pass
        time.sleep(0.01 * (1 - share))


def main(db_url: str, cores: float) -> None:
    token = asyncio.run(make_token(db_url))
    data = asyncio.run(bench_inputs.build(db_url, link_runs={}))
    workdir = Path(tempfile.mkdtemp(prefix="bench-burner-", dir=ROOT / ".data"))
    server = Server(db_url, workdir / "server.log", env={"WEB_CONCURRENCY": "1"})
    try:
        server.wait_healthy()
        for round_ in range(2):
            alone = movers(server.url, token, data, 20)["rps"]
            stop = multiprocessing.Event()
            spinners = [multiprocessing.Process(target=_spin, args=(cores / 2, stop)) for _ in range(2)]
            for spinner in spinners:
                spinner.start()
            try:
                beside = movers(server.url, token, data, 20)["rps"]
            finally:
                stop.set()
                for spinner in spinners:
                    spinner.join()
            print(
                f"round {round_ + 1}: movers alone {alone:.1f}/s, beside {cores:g} core of spinning {beside:.1f}/s"
                f" ({(beside / alone - 1) * 100:+.0f}%)",
                flush=True,
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.4)
