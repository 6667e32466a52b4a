"""Taking access away, seen from the API: a change made with `incidents` holds at the next request.

And the audit of those changes: written with the change or not at all, and never rewritten.
"""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest

from app import db
from app.config import Settings
from app.domain import users
from app.server import create_app
from tests.conftest import Api, alert_id, alert_in, inc
from tests.test_cli import empty_audit, ok, run_cli  # noqa: F401 - empty_audit: an autouse fixture
from tests.test_ingest import detection, send
from tests.test_link_alerts import LINK, incident_ids, link
from tests.test_permissions import ALERT, ALERTS, QUEUE, VIEWER, assert_unauthenticated, codes


@pytest.fixture
def cli(database_url: str):
    async def run(*args: str) -> str:
        return ok(await run_cli(database_url, *args, INCIDENTS_OPERATOR="jane"))

    return run


@pytest.fixture
async def other_process(database_url: str, settings: Settings):
    """A second server with a pool of its own, as another `incidents serve` process would have."""
    pool = await db.create_pool(database_url, settings)
    app = create_app(settings, pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client
    await pool.close()


def bearer(api: Api) -> dict:
    return {"Authorization": f"Bearer {api.token}"}


async def test_a_disabled_users_tokens_are_unauthenticated_at_once_on_every_server(
    cli, client, other_process, make_user, ingest, pool
):
    analyst = await make_user("analyst", "*=write")
    colleague = await make_user("colleague", "*=write")
    a, b = await ingest(alert_in("a"), alert_in("b"))
    for server in (client, other_process):
        assert (await server.post("/graphql", json={"query": VIEWER}, headers=bearer(analyst))).status_code == 200

    await cli("user", "disable", "analyst")

    for server in (client, other_process):
        await assert_unauthenticated(server, bearer(analyst))
    response = await analyst.post(
        LINK,
        {
            "ids": [alert_id(a.id)],
            "target": {"existingIncidentId": inc(b.incident_id)},
            "comment": "after being disabled",
        },
    )
    assert response.status_code == 401
    assert codes(response.json()["errors"]) == ["UNAUTHENTICATED"]
    assert await incident_ids(pool, [a.id]) == {a.id: a.incident_id}
    assert (await colleague(VIEWER))["viewer"]["name"] == "colleague"  # nobody else is affected


async def test_a_lowered_grant_makes_a_move_forbidden_at_once(cli, make_user, ingest, pool):
    analyst = await make_user("analyst", "default=write")
    a, b, c = await ingest(alert_in("a"), alert_in("b"), alert_in("c"))
    assert (await link(analyst, [a.id], existingIncidentId=inc(b.incident_id)))["errors"] == []

    await cli("user", "grant", "analyst", "default=read")

    result = await link(analyst, [c.id], existingIncidentId=inc(b.incident_id))
    assert [(e["code"], e["alertIds"]) for e in result["errors"]] == [("FORBIDDEN", [alert_id(c.id)])]
    assert await incident_ids(pool, [c.id]) == {c.id: c.incident_id}
    alert = (await analyst(ALERT, id=alert_id(c.id)))["alert"]
    assert (alert["id"], alert["viewerCanLink"]) == (alert_id(c.id), False)  # still readable, no longer movable


async def test_a_removed_grant_hides_its_scope_at_once(cli, make_user, ingest):
    analyst = await make_user("analyst", "default=read", "finance=read")
    d, f = await ingest(alert_in("d"), alert_in("f", scope="finance"))
    assert (await analyst(ALERTS))["alerts"]["totalCount"] == 2

    await cli("user", "revoke", "analyst", "finance")

    listed = (await analyst(ALERTS))["alerts"]
    assert [e["node"]["id"] for e in listed["edges"]] == [alert_id(d.id)]
    assert (await analyst(ALERT, id=alert_id(f.id)))["alert"] is None
    queue = (await analyst(QUEUE))["incidents"]
    assert [e["node"]["id"] for e in queue["edges"]] == [inc(d.incident_id)]


async def test_taking_the_queue_and_ingest_permissions_away_holds_at_once(cli, make_user):
    sensor = await make_user("sensor", "*=write", ingest=True)
    assert (await send(sensor, detection("a")))["errors"] == []
    assert (await sensor(QUEUE))["incidents"]["totalCount"] == 1

    await cli("user", "set", "sensor", "--no-queue", "--no-ingest")

    assert codes(await sensor.errors(QUEUE)) == ["FORBIDDEN"]
    assert [e["code"] for e in (await send(sensor, detection("b")))["errors"]] == ["FORBIDDEN"]


# --- the audit -----------------------------------------------------------------------------------


CHANGES = {
    "set_grants": {"grants": [("default", "read")]},
    "remove_grants": {"scopes": ["default"]},
    "set_permissions": {"can_ingest": True},
    "set_enabled": {"enabled": False},
}


@pytest.mark.parametrize("change", CHANGES)
async def test_a_change_whose_audit_entry_cannot_be_written_does_not_happen(make_user, pool, change):
    analyst = await make_user("analyst", "default=write")
    before = (await analyst(VIEWER))["viewer"]
    async with pool.acquire() as conn:
        outer = conn.transaction()
        await outer.start()
        try:
            await conn.execute("ALTER TABLE access_audit ADD CONSTRAINT refuse_everything CHECK (false) NOT VALID")
            with pytest.raises(asyncpg.CheckViolationError, match="refuse_everything"):
                await getattr(users, change)(conn=conn, name="analyst", operator="jane", **CHANGES[change])
            row = await conn.fetchrow("SELECT enabled, can_ingest FROM users WHERE name = 'analyst'")
            assert (row["enabled"], row["can_ingest"]) == (True, False)
            assert await conn.fetchval("SELECT access::text FROM grants WHERE scope = 'default'") == "write"
        finally:
            await outer.rollback()
    assert (await analyst(VIEWER))["viewer"] == before


async def test_the_audit_is_append_only(make_user, pool):
    await make_user("analyst", "default=write")
    assert await pool.fetchval("SELECT count(*) FROM access_audit") > 0
    for statement in ("UPDATE access_audit SET operator = 'someone else'", "DELETE FROM access_audit"):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute(statement)


@pytest.mark.parametrize(
    "operator, action, details",
    [
        ("jane", "grant_set", {"scope": "default", "old": None, "new": "admin"}),
        ("jane", "grant_set", {"scope": "default", "new": "read"}),
        ("jane", "grant_set", {"scope": "default", "old": "read", "new": "read"}),
        ("jane", "grant_removed", {"scope": "default"}),
        ("jane", "permission_changed", {"permission": "delete", "old": False, "new": True}),
        ("jane", "permission_changed", {"permission": "queue", "old": True, "new": True}),
        ("jane", "user_created", {}),
        ("jane", "user_disabled", {"tokens": -1}),
        ("jane", "tokens_revoked", {"tokens": 0}),
        ("jane", "token_issued", {"token": "igt_secret"}),
        ("jane\nroot", "user_enabled", {"tokens": 0}),
        (" ", "user_enabled", {"tokens": 0}),
        ("x" * 201, "user_enabled", {"tokens": 0}),
    ],
)
async def test_malformed_audit_entries_are_refused_by_the_database(pool, operator, action, details):
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(users.AUDIT, operator, action, 1, "analyst", json.dumps(details))
    assert await pool.fetchval("SELECT count(*) FROM access_audit") == 0
