"""What PostgreSQL was doing while the benchmark measured: checkpoints, autovacuum and autoanalyze
runs, GIN pending-list merges, dead tuples and WAL, per timed phase (`make bench`) or per minute
(`make soak`), so that a stall is explained in the output instead of guessed at.

Counters come from the statistics views (pg_stat_checkpointer, pg_stat_wal, pg_stat_user_tables)
read at the start and end of each window. What the views do not count is sampled twice a second
on a connection of its own: which tables autovacuum was working on (pg_stat_progress_vacuum), and
the GIN indexes' pending lists (pgstattuple's pgstatginindex: a list that shrinks was merged,
by autovacuum, by the write that found it full, or by the server's post-commit merge).

And what the machine did: the share of its CPU time that was idle, waiting for the disk, or
stolen by the hypervisor (/proc/stat: a virtual machine whose host runs other guests loses
that share of its cores, and every figure of the window with it).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tests.bench.database import WRITTEN

# The tables the API writes; the others do not change during a run.
TABLES = (*WRITTEN, "moves", "move_items", "move_incidents")

COUNTERS = """
SELECT (SELECT num_timed + num_requested FROM pg_stat_checkpointer) AS checkpoints,
       (SELECT num_requested FROM pg_stat_checkpointer) AS checkpoints_requested,
       (SELECT buffers_written FROM pg_stat_checkpointer) AS checkpoint_buffers,
       (SELECT write_time + sync_time FROM pg_stat_checkpointer) AS checkpoint_ms,
       (SELECT wal_bytes FROM pg_stat_wal) AS wal_bytes
"""
# Before PostgreSQL 17 the checkpointer's counters were in pg_stat_bgwriter.
COUNTERS_BEFORE_17 = """
SELECT (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) AS checkpoints,
       (SELECT checkpoints_req FROM pg_stat_bgwriter) AS checkpoints_requested,
       (SELECT buffers_checkpoint FROM pg_stat_bgwriter) AS checkpoint_buffers,
       (SELECT checkpoint_write_time + checkpoint_sync_time FROM pg_stat_bgwriter) AS checkpoint_ms,
       (SELECT wal_bytes FROM pg_stat_wal) AS wal_bytes
"""
TABLE_COUNTERS = """
SELECT relname, autovacuum_count, autoanalyze_count, n_dead_tup, n_tup_ins, n_tup_upd, n_tup_hot_upd
  FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = ANY($1::text[])
"""
GIN_INDEXES = """
SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.amname = 'gin' AND n.nspname = 'public' ORDER BY 1
"""
PENDING = "SELECT pending_tuples FROM pgstatginindex($1::regclass)"
VACUUMING = """
SELECT p.relid::regclass::text AS relname, a.query LIKE 'autovacuum:%' AS auto
  FROM pg_stat_progress_vacuum p JOIN pg_stat_activity a USING (pid)
"""
ANALYZING = """
SELECT p.relid::regclass::text AS relname FROM pg_stat_progress_analyze p
"""
# /proc/stat's first line: the machine's CPU time in ticks, by what it went to.
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_cpu(stat: Path = Path("/proc/stat")) -> dict[str, int] | None:
    """The machine's CPU ticks so far, by CPU_FIELDS; None where there is no /proc/stat."""
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if first[:1] != ["cpu"] or len(first) < 1 + len(CPU_FIELDS):
        return None
    return dict(zip(CPU_FIELDS, (int(v) for v in first[1 : 1 + len(CPU_FIELDS)]), strict=True))


def cpu_shares(start: dict[str, int] | None, end: dict[str, int] | None) -> dict[str, float]:
    """Percent of the CPU time between two readings that was idle, waiting for I/O, or stolen."""
    if start is None or end is None:
        return {}
    spent = {k: end[k] - start[k] for k in CPU_FIELDS}
    total = sum(spent.values())
    if total <= 0:
        return {}
    return {k: 100.0 * spent[k] / total for k in ("idle", "iowait", "steal")}


@dataclass
class Window:
    """What happened in one window (a phase or a minute)."""

    seconds: float = 0.0
    checkpoints: int = 0
    checkpoints_requested: int = 0
    checkpoint_buffers: int = 0
    checkpoint_ms: float = 0.0
    wal_bytes: int = 0
    autovacuum: Counter = field(default_factory=Counter)  # table: runs finished
    autoanalyze: Counter = field(default_factory=Counter)
    vacuum_seconds: Counter = field(default_factory=Counter)  # table: seconds a vacuum was seen on it
    analyze_seconds: Counter = field(default_factory=Counter)
    gin_merges: Counter = field(default_factory=Counter)  # index: pending lists seen to shrink
    gin_merged: Counter = field(default_factory=Counter)  # index: entries those merges took
    gin_pending_max: Counter = field(default_factory=Counter)  # index: the longest list seen
    dead_tuples: dict = field(default_factory=dict)  # table: at the end
    updates: dict = field(default_factory=dict)  # table: (updates, of which HOT)
    cpu: dict = field(default_factory=dict)  # idle, iowait, steal: percent of the machine's CPU time

    def as_json(self) -> dict:
        return {
            "seconds": round(self.seconds, 1),
            "checkpoints": self.checkpoints,
            "checkpoints_requested": self.checkpoints_requested,
            "checkpoint_buffers": self.checkpoint_buffers,
            "checkpoint_ms": round(self.checkpoint_ms),
            "wal_mb": round(self.wal_bytes / 2**20, 1),
            "autovacuum": dict(self.autovacuum),
            "autoanalyze": dict(self.autoanalyze),
            "vacuum_seconds": {k: round(v, 1) for k, v in self.vacuum_seconds.items()},
            "analyze_seconds": {k: round(v, 1) for k, v in self.analyze_seconds.items()},
            "gin_merges": dict(self.gin_merges),
            "gin_merged_entries": dict(self.gin_merged),
            "gin_pending_max": dict(self.gin_pending_max),
            "dead_tuples": self.dead_tuples,
            "updates": {t: {"rows": n, "hot": hot} for t, (n, hot) in self.updates.items() if n},
            **{f"cpu_{k}_pct": round(v, 1) for k, v in self.cpu.items()},
        }

    def summary(self) -> str:
        """One line for people: what PostgreSQL did meanwhile."""
        parts = [f"WAL {self.wal_bytes / 2**20:,.0f} MB"]
        if self.checkpoints:
            parts.append(
                f"{self.checkpoints} checkpoint{'s' * (self.checkpoints > 1)}"
                f" ({self.checkpoint_buffers:,} buffers"
                f"{f', {self.checkpoints_requested} requested' if self.checkpoints_requested else ''})"
            )
        else:
            parts.append("no checkpoint")
        busy = {**dict.fromkeys(self.autovacuum, 0.0), **self.vacuum_seconds}
        if busy:
            parts.append(
                "vacuum "
                + ", ".join(
                    f"{t} {self.vacuum_seconds.get(t, 0):.0f} s"
                    + (f" ({self.autovacuum[t]} done)" if self.autovacuum.get(t) else "")
                    for t in sorted(busy)
                )
            )
        else:
            parts.append("no vacuum")
        analyzed = {**dict.fromkeys(self.autoanalyze, 0.0), **self.analyze_seconds}
        if analyzed:
            parts.append("analyze " + ", ".join(sorted(analyzed)))
        if self.gin_merges:
            parts.append(
                "pending-list merges "
                + ", ".join(f"{i} {n} ({self.gin_merged[i]:,} entries)" for i, n in sorted(self.gin_merges.items()))
            )
        else:
            parts.append("no pending-list merge")
        updated = {t: (n, hot) for t, (n, hot) in self.updates.items() if n}
        if updated:  # an update that is not HOT writes an entry into every index of its table
            parts.append(
                "updates " + ", ".join(f"{t} {n:,} ({hot / n:.0%} HOT)" for t, (n, hot) in sorted(updated.items()))
            )
        if self.cpu:
            parts.append(
                f"CPU {self.cpu['idle']:.0f}% idle, {self.cpu['iowait']:.0f}% waiting for I/O,"
                f" {self.cpu['steal']:.0f}% stolen by the hypervisor"
            )
        return "; ".join(parts)


class Activity:
    """Samples PostgreSQL on a thread of its own; `window()` measures one stretch of time.

    Windows may overlap (the soak's minutes inside the whole run). It needs pgstattuple, which it
    creates in the benchmark's database (a contrib extension; the product does not use it).
    """

    def __init__(self, url: str, interval: float = 0.5) -> None:
        self.url = url
        self.interval = interval
        self._open: list[Window] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._counter_sql = COUNTERS
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="pg-activity")

    def __enter__(self) -> Activity:
        self._thread.start()
        self._ready.wait(30)
        if self._error:
            raise self._error
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    @contextmanager
    def window(self):
        """Yields the Window; it is complete when the block ends."""
        w = Window()
        start = self._call(self._counters())
        started = time.monotonic()
        with self._lock:
            self._open.append(w)
        try:
            yield w
        finally:
            with self._lock:
                self._open.remove(w)
            end = self._call(self._counters())
            w.seconds = time.monotonic() - started
            self._difference(w, start, end)

    def start_window(self) -> tuple[Window, dict, float]:
        """A window closed later by end_window (the soak's minutes, which follow one another)."""
        w = Window()
        start = self._call(self._counters())
        with self._lock:
            self._open.append(w)
        return w, start, time.monotonic()

    def end_window(self, opened: tuple[Window, dict, float]) -> Window:
        w, start, started = opened
        with self._lock:
            self._open.remove(w)
        w.seconds = time.monotonic() - started
        self._difference(w, start, self._call(self._counters()))
        return w

    # The sampler's loop and connection, used from other threads through _call.

    def _call(self, coro):
        if self._error is not None:
            coro.close()
            raise RuntimeError(f"the PostgreSQL sampler stopped: {self._error!r}")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._sample())
        finally:
            self._loop.close()

    async def _sample(self) -> None:
        try:
            self._conn = await asyncpg.connect(self.url)
            self._using = asyncio.Lock()  # the sampler and the windows share the connection
            await self._conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            if await self._conn.fetchval("SELECT current_setting('server_version_num')::int") < 170000:
                self._counter_sql = COUNTERS_BEFORE_17
            self._gin = [r["relname"] for r in await self._conn.fetch(GIN_INDEXES)]
            self._pending = {i: await self._conn.fetchval(PENDING, i) for i in self._gin}
        except Exception as exc:  # noqa: BLE001 - handed to the thread that waits for it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        last = time.monotonic()
        try:
            while not self._stop.is_set():
                await asyncio.sleep(self.interval)
                now = time.monotonic()
                elapsed, last = now - last, now
                try:
                    await self._sample_once(elapsed)
                except asyncpg.UndefinedTableError:  # an index dropped meanwhile (the anchors')
                    self._gin = [r["relname"] for r in await self._conn.fetch(GIN_INDEXES)]
                    self._pending = {i: await self._conn.fetchval(PENDING, i) for i in self._gin}
                except Exception as exc:  # noqa: BLE001 - said by the next window, not lost
                    self._error = exc
                    return
        finally:
            await self._conn.close()

    async def _sample_once(self, elapsed: float) -> None:
        async with self._using:
            vacuuming = await self._conn.fetch(VACUUMING)
            analyzing = await self._conn.fetch(ANALYZING)
            pending = {i: await self._conn.fetchval(PENDING, i) for i in self._gin}
        with self._lock:
            for w in self._open:
                for r in vacuuming:
                    w.vacuum_seconds[r["relname"]] += elapsed
                for r in analyzing:
                    w.analyze_seconds[r["relname"]] += elapsed
                for index, n in pending.items():
                    w.gin_pending_max[index] = max(w.gin_pending_max[index], n)
                    if n < self._pending[index]:
                        w.gin_merges[index] += 1
                        w.gin_merged[index] += self._pending[index] - n
        self._pending = pending

    async def _counters(self) -> dict:
        async with self._using:
            row = {k: int(v or 0) for k, v in (await self._conn.fetchrow(self._counter_sql)).items()}
            tables = {r["relname"]: dict(r) for r in await self._conn.fetch(TABLE_COUNTERS, list(TABLES))}
        return {**row, "tables": tables, "cpu": machine_cpu()}

    @staticmethod
    def _difference(w: Window, start: dict, end: dict) -> None:
        for key in ("checkpoints", "checkpoints_requested", "checkpoint_buffers", "checkpoint_ms", "wal_bytes"):
            setattr(w, key, end[key] - start[key])
        w.cpu = cpu_shares(start["cpu"], end["cpu"])
        for table, now in end["tables"].items():
            before = start["tables"].get(table, defaultdict(int))
            if n := now["autovacuum_count"] - before["autovacuum_count"]:
                w.autovacuum[table] = n
            if n := now["autoanalyze_count"] - before["autoanalyze_count"]:
                w.autoanalyze[table] = n
            w.dead_tuples[table] = now["n_dead_tup"]
            w.updates[table] = (now["n_tup_upd"] - before["n_tup_upd"], now["n_tup_hot_upd"] - before["n_tup_hot_upd"])
