"""The typeahead rule as `make bench` has PostGraphile serve it (tests/bench/postgraphile/
typeahead.sql) lists what our queue lists, for viewers who may read everything or one scope:
the benchmark checks its own user (every scope) on every input, this the rest of the rule."""

from __future__ import annotations

import asyncpg
import pytest

from app.domain import alerts, incidents, users
from tests.bench import postgraphile
from tests.conftest import alert_in

INPUTS = [
    "",
    "lateral",
    "LATERAL movement",
    "lat lateral",
    "ws-12",
    "acme",
    "globex",
    "1",
    "#2",
    " 3 ",
    "inc_4",
    "inc_04",
    "##2",
    "50%_off",
    "%",
    "_",
    "\\",
    "o",
    "zzz",
    # Evidence (issue 16): every alert holds host-<n>, in both scopes; the one-scope viewer must
    # find only the incidents whose readable alerts hold it.
    "host",
    "host-1",
    "ost-2",
    "HOST-20",
    "host lateral",
]


@pytest.fixture
async def installed(database_url: str) -> None:
    await postgraphile.install_functions(database_url)


async def pg_typeahead(pool: asyncpg.Pool, user_id: int, q: str) -> list[int]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('jwt.claims.user_id', $1, true)", str(user_id))
        return [r["id"] for r in await conn.fetch("SELECT id FROM postgraphile_bench.typeahead($1, 10)", q)]


@pytest.mark.parametrize("grant", ["*=read", "acme=read"])
async def test_postgraphiles_typeahead_lists_what_the_queue_lists(installed, pool, ingest, grant) -> None:
    await ingest(
        *[
            alert_in(f"a{n}", title, scope=scope, minutes=n, entities=[("device", f"host-{n}")])
            for n, (title, scope) in enumerate(
                [
                    ("Lateral movement from WS-1234 to SRV-5", "acme"),
                    ("Lateral movement from WS-1290", "globex"),
                    ("Phishing email to alice@acme.com", "acme"),
                    ("50%_off coupon phishing on ws-12", "globex"),
                    ("Backslash \\ in a command line on ws-120", "acme"),
                    ("Suspicious logon to globex server", "acme"),
                    ("Encoded PowerShell on WS-1200", "globex"),
                ]
                * 3
            )
        ]
    )
    async with pool.acquire() as conn:
        token = await users.add_user(conn=conn, name="viewer", grants=[users.parse_grant(grant)])
        viewer = await users.viewer_for_token(conn=conn, token=token)
    assert viewer is not None

    for q in INPUTS:
        page = await incidents.list_incidents(
            conn=pool, viewer=viewer, flt=incidents.IncidentFilter(search=q), first=10
        )
        assert await pg_typeahead(pool, viewer.id, q) == [i.id for i in page.items], q


async def test_postgraphiles_typeahead_refuses_a_viewer_without_the_queue(installed, pool) -> None:
    async with pool.acquire() as conn:
        await users.add_user(conn=conn, name="sensor", grants=[("*", "read")], can_view_incidents=False)
    sensor = await pool.fetchval("SELECT id FROM users WHERE name = 'sensor'")

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pg_typeahead(pool, sensor, "lateral")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pg_typeahead(pool, 0, "lateral")  # no such user: an unverified or absent JWT


@pytest.mark.parametrize("grant", ["*=read", "acme=read"])
async def test_postgraphiles_first_alerts_are_the_queues(installed, pool, ingest, grant) -> None:
    shared = [("device", "ws-1234")]
    await ingest(
        *[alert_in(f"a{n}", scope=("acme", "globex")[n % 2], minutes=n, entities=shared) for n in range(9)],
        across_scopes=True,
    )
    async with pool.acquire() as conn:
        token = await users.add_user(conn=conn, name="viewer", grants=[users.parse_grant(grant)])
        viewer = await users.viewer_for_token(conn=conn, token=token)
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM incidents")]
    expected = await alerts.first_alerts_of_incidents(conn=pool, viewer=viewer, incident_ids=ids, first=5)

    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('jwt.claims.user_id', $1, true)", str(viewer.id))
        for incident in ids:
            got = await conn.fetch(
                "SELECT a.id FROM incidents i, postgraphile_bench.incidents_first_alerts(i, 5) a WHERE i.id = $1",
                incident,
            )
            assert [r["id"] for r in got] == [a.id for a in expected[incident].items]


def test_without_npm_the_benchmark_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(postgraphile, "CACHE", tmp_path)
    monkeypatch.setattr(postgraphile.shutil, "which", lambda name: None)

    with pytest.raises(SystemExit, match=r"npm is not installed.*make bench-deps.*nodejs and npm"):
        postgraphile.install()
