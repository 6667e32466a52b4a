"""linkAlerts: moving alerts between incidents, as an analyst or a script sees it."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from app.domain import linking
from app.domain.models import Incident, IncidentStatus
from app.domain.viewers import Viewer
from tests.conftest import alert_id, alert_in, inc
from tests.invariants import redirect_by_hand

LINK = """
mutation($ids: [ID!]!, $target: LinkTarget!, $comment: String!) {
  linkAlerts(alertIds: $ids, target: $target, comment: $comment) {
    targetIncident { id name status severity alertCount lastActivityAt }
    sourceIncidents { id status severity alertCount lastActivityAt }
    alerts { id incident { id } }
    logEntries { kind actor comment message incident { id } alert { id } otherIncident { id } }
    errors { code message field alertIds }
  }
}
"""

LOG = """
query($id: ID!) { incident(id: $id) { status activityLog { edges { node {
  kind actor comment message alert { id } otherIncident { id } } } } } }
"""


async def link(api, ids, comment="same attacker", **target):
    data = await api(LINK, ids=[alert_id(i) if isinstance(i, int) else i for i in ids], target=target, comment=comment)
    return data["linkAlerts"]


async def log_of(api, incident_id):
    data = await api(LOG, id=inc(incident_id))
    return [e["node"] for e in data["incident"]["activityLog"]["edges"]]


async def incident_ids(pool, alert_ids):
    rows = await pool.fetch("SELECT id, incident_id FROM alerts WHERE id = ANY($1::bigint[])", alert_ids)
    return {r["id"]: r["incident_id"] for r in rows}


async def test_move_to_existing_incident_writes_both_logs(admin, ingest, pool):
    a, b = await ingest(alert_in("a", "Phish on WS-1"), alert_in("b", "Beacon on WS-2", severity="high"))
    assert a.incident_id != b.incident_id

    result = await link(admin, [a.id], existingIncidentId=inc(b.incident_id), comment="  same campaign  ")

    assert result["errors"] == []
    assert result["targetIncident"]["id"] == inc(b.incident_id)
    assert result["targetIncident"]["alertCount"] == 2
    assert result["alerts"] == [{"id": alert_id(a.id), "incident": {"id": inc(b.incident_id)}}]
    kinds = [(e["kind"], e["incident"]["id"]) for e in result["logEntries"]]
    assert ("ALERT_LINKED", inc(b.incident_id)) in kinds
    assert ("ALERT_UNLINKED", inc(a.incident_id)) in kinds
    for entry in result["logEntries"]:
        assert entry["actor"] == "admin"
        assert entry["comment"] == "same campaign"

    target_log = await log_of(admin, b.incident_id)
    assert target_log[0]["kind"] in {"ALERT_LINKED"}
    linked = next(e for e in target_log if e["kind"] == "ALERT_LINKED")
    assert linked["otherIncident"] == {"id": inc(a.incident_id)}
    assert linked["alert"] == {"id": alert_id(a.id)}
    assert "Phish on WS-1" in linked["message"]
    source_log = await log_of(admin, a.incident_id)
    unlinked = next(e for e in source_log if e["kind"] == "ALERT_UNLINKED")
    assert unlinked["otherIncident"] == {"id": inc(b.incident_id)}
    assert await incident_ids(pool, [a.id]) == {a.id: b.incident_id}


async def test_emptied_source_is_resolved_with_a_log_entry(admin, ingest):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    result = await link(admin, [a.id], existingIncidentId=inc(b.incident_id))
    [source] = result["sourceIncidents"]
    assert source == {**source, "id": inc(a.incident_id), "status": "RESOLVED", "alertCount": 0}
    log = await log_of(admin, a.incident_id)
    assert log[0]["kind"] == "INCIDENT_RESOLVED"
    assert log[0]["otherIncident"] == {"id": inc(b.incident_id)}
    assert f"incident {b.incident_id}" in log[0]["message"]


async def test_source_keeps_severity_and_activity_when_emptied(admin, ingest):
    a, b = await ingest(alert_in("a", severity="high", minutes=30), alert_in("b", severity="low"))
    before = (await admin(LOG.replace("status", "status severity lastActivityAt"), id=inc(a.incident_id)))["incident"]
    result = await link(admin, [a.id], existingIncidentId=inc(b.incident_id))
    [source] = result["sourceIncidents"]
    assert source["severity"] == "HIGH" == before["severity"]
    assert source["lastActivityAt"] == before["lastActivityAt"]


async def test_derived_fields_of_target_and_source_are_recomputed(admin, ingest):
    shared = [("device", "ws-7")]
    a1, a2 = await ingest(
        alert_in("a1", severity="high", minutes=50, entities=shared),
        alert_in("a2", severity="low", minutes=55, entities=shared),
    )
    b = (await ingest(alert_in("b", severity="informational", minutes=0)))[0]
    assert a1.incident_id == a2.incident_id

    result = await link(admin, [a1.id], existingIncidentId=inc(b.incident_id))

    target = result["targetIncident"]
    assert target["severity"] == "HIGH"
    assert target["lastActivityAt"].startswith("2026-11-20T12:50")
    [source] = result["sourceIncidents"]
    assert source["severity"] == "LOW"
    assert source["lastActivityAt"].startswith("2026-11-20T12:55")
    assert source["status"] == "ACTIVE"
    assert source["alertCount"] == 1


async def test_create_new_incident_named_after_single_title(admin, ingest):
    a, b = await ingest(
        alert_in("a", "Suspicious PowerShell", entities=[("device", "x")]),
        alert_in("b", "Suspicious PowerShell", entities=[("device", "y")]),
    )
    result = await link(admin, [a.id, b.id], createNew=True)
    target = result["targetIncident"]
    assert target["name"] == "Suspicious PowerShell"
    assert target["status"] == "ACTIVE"
    assert target["alertCount"] == 2
    assert result["logEntries"][0]["kind"] == "INCIDENT_CREATED"
    assert result["logEntries"][0]["incident"] == {"id": target["id"]}
    kinds = sorted(e["kind"] for e in result["logEntries"])
    assert kinds.count("ALERT_LINKED") == 2 and kinds.count("ALERT_UNLINKED") == 2
    assert kinds.count("INCIDENT_RESOLVED") == 2


async def test_create_new_incident_named_after_categories_and_devices(admin, ingest):
    alerts = await ingest(
        alert_in("a", "PowerShell", category="Execution", entities=[("device", "WS-1")]),
        alert_in("b", "Net view", category="Discovery", minutes=1, entities=[("device", "WS-2")]),
        alert_in("c", "Remote service", category="LateralMovement", minutes=2, entities=[("device", "ws-2")]),
    )
    result = await link(admin, [a.id for a in alerts], createNew=True)
    assert result["targetIncident"]["name"] == (
        "Multi-stage incident involving Execution, Discovery & Lateral Movement on 2 devices"
    )


async def test_replay_of_a_move_succeeds_and_writes_nothing(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    await link(admin, [a.id], existingIncidentId=inc(b.incident_id))
    entries_before = await pool.fetchval("SELECT count(*) FROM activity_log")

    again = await link(admin, [a.id, b.id], existingIncidentId=inc(b.incident_id))

    assert again["errors"] == []
    assert again["logEntries"] == []
    assert again["sourceIncidents"] == []
    assert await pool.fetchval("SELECT count(*) FROM activity_log") == entries_before


async def test_alerts_already_in_target_stay_and_write_nothing(admin, ingest):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    result = await link(admin, [a.id, b.id], existingIncidentId=inc(b.incident_id))
    assert [e["alert"]["id"] for e in result["logEntries"] if e["alert"]] == [alert_id(a.id), alert_id(a.id)]


async def test_duplicate_ids_are_ignored(admin, ingest):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    result = await link(admin, [a.id, a.id], existingIncidentId=inc(b.incident_id))
    assert result["errors"] == []
    assert len([e for e in result["logEntries"] if e["kind"] == "ALERT_LINKED"]) == 1


async def test_resolved_target_is_reopened(admin, ingest):
    a, b, c = await ingest(alert_in("a"), alert_in("b"), alert_in("c"))
    await link(admin, [a.id], existingIncidentId=inc(b.incident_id))  # resolves a's incident
    result = await link(admin, [c.id], existingIncidentId=inc(a.incident_id))
    assert result["targetIncident"]["status"] == "ACTIVE"
    reopened = [e for e in result["logEntries"] if e["kind"] == "INCIDENT_REOPENED"]
    assert len(reopened) == 1 and reopened[0]["incident"] == {"id": inc(a.incident_id)}


async def test_unknown_and_malformed_alert_ids_change_nothing(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    result = await link(admin, [a.id, 999, "x1", "12", inc(a.incident_id)], existingIncidentId=inc(b.incident_id))
    assert result["targetIncident"] is None
    [error] = result["errors"]
    assert error["code"] == "ALERT_NOT_FOUND"
    assert error["alertIds"] == [alert_id(999), "x1", "12", inc(a.incident_id)]
    assert error["field"] == "alertIds"
    assert await incident_ids(pool, [a.id]) == {a.id: a.incident_id}
    assert await pool.fetchval("SELECT count(*) FROM activity_log WHERE kind::text LIKE 'alert_%linked'") == 0


async def test_unknown_target(admin, ingest):
    (a,) = await ingest(alert_in("a"))
    for target in (inc(424242), "not-a-number", "424242", alert_id(a.id)):
        result = await link(admin, [a.id], existingIncidentId=target)
        assert [e["code"] for e in result["errors"]] == ["INCIDENT_NOT_FOUND"]
        assert result["errors"][0]["field"] == "target.existingIncidentId"


async def test_redirected_target_is_not_linkable(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    await redirect_by_hand(pool, b.incident_id, a.incident_id)
    result = await link(admin, [a.id], existingIncidentId=inc(b.incident_id))
    assert [e["code"] for e in result["errors"]] == ["TARGET_NOT_LINKABLE"]


@pytest.mark.parametrize(
    ("ids", "comment", "target", "field"),
    [
        ([], "why", {"createNew": True}, "alertIds"),
        ([alert_id(1)], "   ", {"createNew": True}, "comment"),
        ([alert_id(1)], "x" * 30_001, {"createNew": True}, "comment"),
        ([alert_id(1)], "why", {"createNew": False}, "target.createNew"),
        ([alert_id(i) for i in range(1, 1002)], "why", {"createNew": True}, "alertIds"),
    ],
)
async def test_invalid_input(admin, ingest, pool, ids, comment, target, field):
    await ingest(alert_in("a"))
    data = await admin(LINK, ids=ids, target=target, comment=comment)
    errors = data["linkAlerts"]["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [("INVALID_INPUT", field)]
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 1


async def test_every_problem_is_reported_at_once(make_user, ingest, pool):
    analyst = await make_user("analyst", "default=write", "finance=read")
    a, f = await ingest(alert_in("a"), alert_in("f", scope="finance"))

    result = await link(analyst, [a.id, 999, f.id], existingIncidentId=inc(424242), comment="   ")

    assert result["targetIncident"] is None
    assert [(e["code"], e["field"], e["alertIds"]) for e in result["errors"]] == [
        ("INVALID_INPUT", "comment", []),
        ("ALERT_NOT_FOUND", "alertIds", [alert_id(999)]),
        ("FORBIDDEN", "alertIds", [alert_id(f.id)]),
        ("INCIDENT_NOT_FOUND", "target.existingIncidentId", []),
    ]
    assert await incident_ids(pool, [a.id, f.id]) == {a.id: a.incident_id, f.id: f.incident_id}
    assert await pool.fetchval("SELECT count(*) FROM activity_log WHERE actor = 'analyst'") == 0


async def test_an_unlinkable_target_is_reported_with_the_input_s_problems(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    await redirect_by_hand(pool, b.incident_id, a.incident_id)
    result = await link(admin, [], existingIncidentId=inc(b.incident_id), comment="x" * 30_001)
    assert [(e["code"], e["field"]) for e in result["errors"]] == [
        ("INVALID_INPUT", "alertIds"),
        ("INVALID_INPUT", "comment"),
        ("TARGET_NOT_LINKABLE", "target.existingIncidentId"),
    ]


async def test_without_the_queue_permission_the_alerts_are_checked_but_not_the_target(make_user, ingest, pool):
    """Looking the target up would be opening an incident by number: browsing the queue."""
    analyst = await make_user("analyst", "*=write", queue=False)
    (a,) = await ingest(alert_in("a"))
    result = await link(analyst, [a.id, 999], existingIncidentId=inc(424242))
    assert [(e["code"], e["alertIds"]) for e in result["errors"]] == [
        ("FORBIDDEN", []),
        ("ALERT_NOT_FOUND", [alert_id(999)]),
    ]
    assert await incident_ids(pool, [a.id]) == {a.id: a.incident_id}


async def test_comment_of_30000_characters_is_accepted(admin, ingest):
    (a,) = await ingest(alert_in("a"))
    result = await link(admin, [a.id], createNew=True, comment="x" * 30_000)
    assert result["errors"] == []


async def test_both_or_neither_target_is_a_graphql_error(admin, ingest):
    (a,) = await ingest(alert_in("a"))
    for target in ({}, {"createNew": True, "existingIncidentId": inc(1)}):
        errors = await admin.errors(LINK, ids=[alert_id(a.id)], target=target, comment="c")
        assert "exactly one" in errors[0]["message"].lower() or "oneof" in errors[0]["message"].lower()


async def test_all_or_nothing_when_one_alert_is_forbidden(make_user, ingest, pool):
    analyst = await make_user("analyst", "default=write", "finance=read")
    a, f, t = await ingest(alert_in("a"), alert_in("f", scope="finance"), alert_in("t"))
    result = await link(analyst, [a.id, f.id], existingIncidentId=inc(t.incident_id))
    assert [(e["code"], e["alertIds"]) for e in result["errors"]] == [("FORBIDDEN", [alert_id(f.id)])]
    assert await incident_ids(pool, [a.id, f.id]) == {a.id: a.incident_id, f.id: f.incident_id}
    assert await pool.fetchval("SELECT count(*) FROM activity_log WHERE actor = 'analyst'") == 0


async def test_unreadable_alert_looks_like_an_unknown_one(make_user, ingest):
    analyst = await make_user("analyst", "default=write")
    a, secret, t = await ingest(alert_in("a"), alert_in("s", scope="hr"), alert_in("t"))
    hidden = await link(analyst, [a.id, secret.id], existingIncidentId=inc(t.incident_id))
    unknown = await link(analyst, [a.id, 9999], existingIncidentId=inc(t.incident_id))
    assert hidden["errors"][0]["code"] == unknown["errors"][0]["code"] == "ALERT_NOT_FOUND"
    assert hidden["errors"][0]["message"].replace(alert_id(secret.id), "N") == unknown["errors"][0]["message"].replace(
        alert_id(9999), "N"
    )


async def test_invisible_target_looks_like_an_unknown_one(make_user, ingest):
    analyst = await make_user("analyst", "default=write")
    a, secret = await ingest(alert_in("a"), alert_in("s", scope="hr"))
    result = await link(analyst, [a.id], existingIncidentId=inc(secret.incident_id))
    assert [e["code"] for e in result["errors"]] == ["INCIDENT_NOT_FOUND"]


async def test_viewer_without_queue_permission_is_forbidden(make_user, ingest, pool):
    analyst = await make_user("analyst", "*=write", queue=False)
    a, b = await ingest(alert_in("a"), alert_in("b"))
    result = await link(analyst, [a.id], existingIncidentId=inc(b.incident_id))
    assert [e["code"] for e in result["errors"]] == ["FORBIDDEN"]
    assert await incident_ids(pool, [a.id]) == {a.id: a.incident_id}


async def test_reader_cannot_move(make_user, ingest):
    reader = await make_user("reader", "*=read")
    a, b = await ingest(alert_in("a"), alert_in("b"))
    result = await link(reader, [a.id], existingIncidentId=inc(b.incident_id))
    assert [(e["code"], e["alertIds"]) for e in result["errors"]] == [("FORBIDDEN", [alert_id(a.id)])]


async def test_move_a_thousand_alerts_at_once(admin, ingest, pool):
    alerts = []
    for start in range(0, 1000, 500):
        alerts += await ingest(
            *[alert_in(f"bulk-{i}", entities=[("device", "shared")]) for i in range(start, start + 500)]
        )
    target = (await ingest(alert_in("t")))[0]
    result = await link(admin, [a.id for a in alerts], existingIncidentId=inc(target.incident_id))
    assert result["errors"] == []
    assert result["targetIncident"]["alertCount"] == 1001
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE incident_id = $1", target.incident_id) == 1001


async def test_one_alert_spelled_two_ways_moves_once(admin, ingest):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    result = await link(admin, [alert_id(a.id), f" {alert_id(a.id)}\t"], existingIncidentId=inc(b.incident_id))
    assert result["errors"] == []
    assert [x["id"] for x in result["alerts"]] == [alert_id(a.id)]
    assert sorted(e["kind"] for e in result["logEntries"]) == ["ALERT_LINKED", "ALERT_UNLINKED", "INCIDENT_RESOLVED"]


async def test_non_ascii_digits_are_not_ids(admin, ingest):
    _, b = await ingest(alert_in("a"), alert_in("b"))
    result = await link(admin, ["١", "alert_١"], existingIncidentId=inc(b.incident_id))
    assert [(e["code"], e["alertIds"]) for e in result["errors"]] == [("ALERT_NOT_FOUND", ["١", "alert_١"])]


async def test_an_unreadable_alert_locked_elsewhere_does_not_make_the_answer_wait(make_user, ingest, pool):
    """Waiting on its row lock would tell, by timing, that the unreadable alert exists."""
    analyst = await make_user("analyst", "default=write")
    a, secret, t = await ingest(alert_in("a"), alert_in("s", scope="hr"), alert_in("t"))
    async with pool.acquire() as other, other.transaction():
        await other.execute(
            "SELECT 1 FROM alerts WHERE id = ANY($1::bigint[]) FOR UPDATE", [secret.id, secret.incident_id]
        )
        await other.execute("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", secret.incident_id)
        result = await asyncio.wait_for(link(analyst, [a.id, secret.id], existingIncidentId=inc(t.incident_id)), 10)
        hidden_target = await asyncio.wait_for(link(analyst, [a.id], existingIncidentId=inc(secret.incident_id)), 10)
    assert [e["code"] for e in result["errors"]] == ["ALERT_NOT_FOUND"]
    assert [e["code"] for e in hidden_target["errors"]] == ["INCIDENT_NOT_FOUND"]


async def test_a_source_left_with_only_unreadable_alerts_is_not_shown(make_user, ingest):
    analyst = await make_user("analyst", "default=write")
    shared = [("device", "ws-9")]
    mine, hidden = await ingest(
        alert_in("mine", severity="low", entities=shared),
        alert_in("hidden", "Payroll export to dropbox", severity="high", scope="hr", minutes=1, entities=shared),
        across_scopes=True,
    )
    (t,) = await ingest(alert_in("t"))
    assert mine.incident_id == hidden.incident_id

    query = LINK.replace("logEntries { kind", "logEntries { incident { id name severity } kind")
    data = await analyst(query, ids=[alert_id(mine.id)], target={"existingIncidentId": inc(t.incident_id)}, comment="c")
    result = data["linkAlerts"]

    assert result["errors"] == []
    assert result["sourceIncidents"] == []
    assert {e["incident"]["id"] for e in result["logEntries"]} == {inc(t.incident_id)}
    assert "Payroll" not in str(result)


# --- the target checked again once locked (linking.SESSION_SQL's step 3) ------------------------


async def test_a_target_merged_after_the_check_but_before_the_lock_is_refused(admin, ingest, pool, monkeypatch):
    a, b, c = await ingest(alert_in("a"), alert_in("b"), alert_in("c"))
    as_checked = await linking._incident(pool, b.incident_id)
    await redirect_by_hand(pool, b.incident_id, c.incident_id)
    entries = await pool.fetchval("SELECT count(*) FROM activity_log")

    async def stale(conn, number):  # the check read the target before the merge committed
        return as_checked

    monkeypatch.setattr(linking, "_incident", stale)
    result = await link(admin, [a.id], existingIncidentId=inc(b.incident_id))

    assert [e["code"] for e in result["errors"]] == ["TARGET_NOT_LINKABLE"]
    assert await incident_ids(pool, [a.id]) == {a.id: a.incident_id}
    assert await pool.fetchval("SELECT count(*) FROM activity_log") == entries


async def test_a_target_that_became_invisible_before_the_lock_looks_like_an_unknown_one(
    make_user, ingest, pool, monkeypatch
):
    analyst = await make_user("analyst", "default=write")
    a, secret = await ingest(alert_in("a"), alert_in("s", scope="hr"))
    as_checked = dataclasses.replace(await linking._incident(pool, secret.incident_id), alert_scopes=["default"])

    async def stale(conn, number):  # the check read the target while it held an alert of `default`
        return as_checked

    monkeypatch.setattr(linking, "_incident", stale)
    result = await link(analyst, [a.id], existingIncidentId=inc(secret.incident_id))

    assert [e["code"] for e in result["errors"]] == ["INCIDENT_NOT_FOUND"]
    assert await incident_ids(pool, [a.id]) == {a.id: a.incident_id}


SCOPES = [[], ["default"], ["hr"], ["default", "hr"]]
VIEWERS = [
    Viewer(1, "everyone's", True, False, {"*": "write"}),
    Viewer(2, "default's", True, False, {"default": "write"}),
    Viewer(3, "hr reader", True, False, {"default": "write", "hr": "read"}),
]


@pytest.mark.parametrize("status", list(IncidentStatus))
async def test_the_lock_time_check_and_the_first_check_agree(ingest, pool, status):
    """The function's check (SQL) and _target_problems (Python) decide alike, for every status,
    every set of scopes and every kind of viewer: the function refuses what Python would."""
    [a] = await ingest(alert_in("a"))
    for scopes in SCOPES:
        for viewer in VIEWERS:
            async with pool.acquire() as conn:
                undo = conn.transaction()
                await undo.start()
                try:
                    target = await conn.fetchval(
                        "INSERT INTO incidents (name, severity, last_activity_at, status, alert_scopes, redirect_incident_id)"
                        " VALUES ('t', 'low', now(), $1::incident_status, $2, CASE WHEN $1 = 'redirected' THEN $3::bigint END)"
                        " RETURNING id",
                        status,
                        scopes,
                        a.incident_id,
                    )
                    row = await conn.fetchrow(
                        linking.LINK,
                        [a.id],
                        target,
                        [],
                        0,
                        True,
                        viewer.name,
                        "why",
                        viewer.reads_everything,
                        viewer.readable_scopes,
                        None,
                        None,
                        None,
                        None,
                    )
                    problems = linking._target_problems(
                        linking.Target(existing_incident_id=inc(target)), Incident(*row["target"]), viewer
                    )
                    assert row["refused"] == bool(problems), (status, scopes, viewer.name)
                    assert (row["move_id"] is None) == bool(problems), (status, scopes, viewer.name)
                finally:
                    await undo.rollback()  # every case from the same state
