"""revertMove: undoing a move, a merge or a revert, as an analyst or a script sees it."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import alert_id, alert_in, inc
from tests.invariants import assert_invariants
from tests.test_merge import merge

LINK = """
mutation($ids: [ID!]!, $target: LinkTarget!) {
  linkAlerts(alertIds: $ids, target: $target, comment: "same host") {
    targetIncident { id } move { id kind viewerCanRevert } errors { code }
  }
}
"""
REVERT = """
mutation($move: ID!, $comment: String!, $key: String) {
  revertMove(moveId: $move, comment: $comment, idempotencyKey: $key) {
    move { id kind actor comment target { id } sources { id } reverts { id } alertCount
           items(first: 50) { edges { node { alert { id } from { id } to { id } } } } }
    reverted { id revertedBy { id } viewerCanRevert }
    incidents { id status alertCount redirectIncident { id } }
    alerts { id incident { id } }
    logEntries { kind incident { id } otherIncident { id } message move { id } }
    errors { code message field alertIds moveIds incidentIds }
  }
}
"""


async def link(api, ids, **target):
    return (await api(LINK, ids=[alert_id(i) for i in ids], target=target))["linkAlerts"]


async def revert(api, move, comment="wrong story", key=None):
    return (await api(REVERT, move=move, comment=comment, key=key))["revertMove"]


async def status(pool, incident):
    return await pool.fetchval("SELECT status::text FROM incidents WHERE id = $1", incident)


async def test_reverting_a_move_puts_the_alert_back_and_reopens_the_emptied_source(admin, ingest, pool):
    a, b = await ingest(alert_in("a", severity="high"), alert_in("b", severity="low"))
    moved = await link(admin, [a.id], existingIncidentId=inc(b.incident_id))
    assert moved["move"]["kind"] == "LINK" and moved["move"]["viewerCanRevert"] is True
    assert await status(pool, a.incident_id) == "resolved"

    result = await revert(admin, moved["move"]["id"])

    assert result["errors"] == []
    move = result["move"]
    assert move["kind"] == "REVERT" and move["reverts"] == {"id": moved["move"]["id"]} and move["target"] is None
    assert move["sources"] == [{"id": inc(b.incident_id)}] and move["alertCount"] == 1
    assert [e["node"] for e in move["items"]["edges"]] == [
        {"alert": {"id": alert_id(a.id)}, "from": {"id": inc(b.incident_id)}, "to": {"id": inc(a.incident_id)}}
    ]
    assert result["reverted"] == {"id": moved["move"]["id"], "revertedBy": {"id": move["id"]}, "viewerCanRevert": False}
    assert result["alerts"] == [{"id": alert_id(a.id), "incident": {"id": inc(a.incident_id)}}]
    incidents = {i["id"]: i for i in result["incidents"]}
    assert incidents[inc(a.incident_id)]["status"] == "ACTIVE"
    assert incidents[inc(a.incident_id)]["alertCount"] == 1
    assert incidents[inc(b.incident_id)]["alertCount"] == 1
    entries = [(e["kind"], e["incident"]["id"], e["otherIncident"]["id"]) for e in result["logEntries"]]
    assert entries == [
        ("ALERTS_SENT_BACK", inc(b.incident_id), inc(a.incident_id)),
        ("ALERTS_RETURNED", inc(a.incident_id), inc(b.incident_id)),
        ("INCIDENT_REOPENED", inc(a.incident_id), inc(b.incident_id)),
    ]
    assert {e["move"]["id"] for e in result["logEntries"]} == {move["id"]}
    assert (
        result["logEntries"][1]["message"]
        == f"1 alert moved back here from incident {b.incident_id} by admin, reverting a move."
    )
    assert await pool.fetchval("SELECT severity::text FROM incidents WHERE id = $1", b.incident_id) == "low"
    await assert_invariants(pool)


async def test_a_move_is_reverted_once_and_reverting_the_revert_puts_the_alerts_back(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    moved = (await link(admin, [a.id], existingIncidentId=inc(b.incident_id)))["move"]["id"]
    first = await revert(admin, moved)
    again = await revert(admin, moved)
    assert [(e["code"], e["moveIds"]) for e in again["errors"]] == [("ALREADY_REVERTED", [first["move"]["id"]])]
    redo = await revert(admin, first["move"]["id"], comment="it was right after all")
    assert redo["errors"] == [] and redo["move"]["reverts"] == {"id": first["move"]["id"]}
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", a.id) == b.incident_id
    assert await status(pool, a.incident_id) == "resolved"  # emptied again
    await assert_invariants(pool)


async def test_an_alert_moved_since_refuses_the_whole_revert(admin, ingest, pool):
    a, b, c = await ingest(alert_in("a"), alert_in("b"), alert_in("c"))
    first = (await link(admin, [a.id, c.id], existingIncidentId=inc(b.incident_id)))["move"]["id"]
    (d,) = await ingest(alert_in("d", entities=[("device", "elsewhere")]))
    later = (await link(admin, [a.id], existingIncidentId=inc(d.incident_id)))["move"]["id"]

    result = await revert(admin, first)

    assert [(e["code"], e["alertIds"], e["moveIds"]) for e in result["errors"]] == [
        ("ALERT_MOVED_SINCE", [alert_id(a.id)], [later])
    ]
    assert result["move"] is None
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", c.id) == b.incident_id
    # Reverting the later move first makes the first revertible.
    assert (await revert(admin, later))["errors"] == []
    assert (await revert(admin, first))["errors"] == []
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", a.id) == a.incident_id
    await assert_invariants(pool)


async def test_reverting_a_created_incident_move_resolves_it(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    moved = await link(admin, [a.id, b.id], createNew=True)
    created = int(moved["targetIncident"]["id"].split("_")[1])
    result = await revert(admin, moved["move"]["id"])
    assert result["errors"] == []
    assert await status(pool, created) == "resolved"
    assert [e["kind"] for e in result["logEntries"] if e["incident"]["id"] == inc(created)][-1] == "INCIDENT_RESOLVED"
    await assert_invariants(pool)


async def test_reverting_a_merge_opens_the_sources_again_and_its_revert_merges_them_again(admin, ingest, pool):
    x = await ingest(*[alert_in(f"x{i}", entities=[("device", "x")]) for i in range(3)])
    y = await ingest(*[alert_in(f"y{i}", entities=[("device", "y")]) for i in range(2)])
    (z,) = await ingest(alert_in("z", entities=[("device", "z")]))
    ix, iy, iz = x[0].incident_id, y[0].incident_id, z.incident_id
    await link(admin, [z.id], existingIncidentId=inc(ix))  # z's incident: empty, RESOLVED
    merged = await merge(admin, [ix, iy, iz])
    assert merged["errors"] == [] and merged["target"]["id"] == inc(ix)

    result = await revert(admin, merged["move"]["id"])

    assert result["errors"] == []
    incidents = {i["id"]: i for i in result["incidents"]}
    assert incidents[inc(iy)] == {"id": inc(iy), "status": "ACTIVE", "alertCount": 2, "redirectIncident": None}
    # An incident that held no alert when merged is open again, and RESOLVED since it holds none.
    assert incidents[inc(iz)] == {"id": inc(iz), "status": "RESOLVED", "alertCount": 0, "redirectIncident": None}
    assert incidents[inc(ix)]["alertCount"] == 4
    kinds = [(e["kind"], e["incident"]["id"]) for e in result["logEntries"]]
    assert ("INCIDENT_UNMERGED", inc(iy)) in kinds and ("INCIDENT_UNMERGED", inc(iz)) in kinds
    assert ("ALERTS_SENT_BACK", inc(ix)) in kinds and ("ALERTS_RETURNED", inc(iy)) in kinds
    await assert_invariants(pool)

    redo = await revert(admin, result["move"]["id"], comment="they were one story")
    assert redo["errors"] == []
    assert await status(pool, iy) == "redirected" and await status(pool, iz) == "redirected"
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE incident_id <> $1", ix) == 0
    await assert_invariants(pool)


async def test_a_revert_would_send_alerts_to_an_incident_merged_since(admin, ingest, pool):
    a, b, c = await ingest(alert_in("a"), alert_in("b"), alert_in("c"))
    await link(admin, [c.id], existingIncidentId=inc(a.incident_id))  # a's incident holds c too
    moved = (await link(admin, [a.id], existingIncidentId=inc(b.incident_id)))["move"]["id"]
    merged = await merge(admin, [a.incident_id, b.incident_id], target=inc(b.incident_id))
    assert merged["errors"] == []
    result = await revert(admin, moved)
    codes = {e["code"]: e for e in result["errors"]}
    # c moved with the merge (ALERT_MOVED_SINCE), and a's incident is REDIRECTED.
    assert codes["INCIDENT_MERGED_SINCE"]["incidentIds"] == [inc(a.incident_id)]
    assert codes["INCIDENT_MERGED_SINCE"]["moveIds"] == [merged["move"]["id"]]
    assert (await node(admin, moved))["viewerCanRevert"] is False
    await assert_invariants(pool)


async def test_refusals(make_user, admin, ingest, pool):
    analyst = await make_user("analyst", "default=write", "hr=read")
    a, h, t = await ingest(
        alert_in("a", entities=[("device", "a")]),
        alert_in("h", scope="hr", entities=[("device", "h")]),
        alert_in("t", entities=[("device", "t")]),
    )
    moved = (await link(admin, [a.id, h.id], existingIncidentId=inc(t.incident_id)))["move"]["id"]
    result = await revert(analyst, moved, comment=" ")
    assert {(e["code"], e["field"]) for e in result["errors"]} == {
        ("INVALID_INPUT", "comment"),
        ("FORBIDDEN", "moveId"),
    }
    assert [e["alertIds"] for e in result["errors"] if e["code"] == "FORBIDDEN"] == [[alert_id(h.id)]]
    for junk in ("move_999", "inc_1", "junk"):
        result = await revert(admin, junk)
        assert [e["code"] for e in result["errors"]] == ["MOVE_NOT_FOUND"], junk
    # A move that touched only incidents the viewer cannot see is not found.
    reader = await make_user("reader", "other=read")
    assert [e["code"] for e in (await revert(reader, moved))["errors"]] == ["MOVE_NOT_FOUND"]
    noqueue = await make_user("noqueue", "*=write", queue=False)
    assert [(e["code"], e["field"]) for e in (await revert(noqueue, moved))["errors"]] == [("FORBIDDEN", None)]
    assert await pool.fetchval("SELECT count(*) FROM moves") == 1


async def test_replays_with_an_idempotency_key(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    moved = (await link(admin, [a.id], existingIncidentId=inc(b.incident_id)))["move"]["id"]
    first = await revert(admin, moved, key="undo-1")
    again = await revert(admin, moved, key="undo-1")
    assert first["errors"] == [] and again["move"] == first["move"] and again["logEntries"] == first["logEntries"]
    other = await revert(admin, moved, comment="another reason", key="undo-1")
    assert [(e["code"], e["field"]) for e in other["errors"]] == [("INVALID_INPUT", "idempotencyKey")]
    assert await pool.fetchval("SELECT count(*) FROM moves WHERE kind = 'revert'") == 1


async def test_the_database_says_a_move_is_reverted_once_and_redirects_end(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    moved = (await link(admin, [a.id], existingIncidentId=inc(b.incident_id)))["move"]["id"]
    await revert(admin, moved)
    number = int(moved.split("_")[1])
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            "INSERT INTO moves (kind, actor, comment, reverts_move_id, alert_count, alert_scopes, source_incident_ids)"
            " VALUES ('revert', 'x', 'again', $1, 0, '{}', '{}')",
            number,
        )
    with pytest.raises(asyncpg.CheckViolationError):  # a revert has no target
        await pool.execute(
            "INSERT INTO moves (kind, actor, comment, target_incident_id, reverts_move_id, alert_count, alert_scopes,"
            " source_incident_ids) VALUES ('revert', 'x', 'c', $1, NULL, 0, '{}', '{}')",
            b.incident_id,
        )
    with pytest.raises(asyncpg.CheckViolationError):  # only a merge has reasons
        await pool.execute(
            "INSERT INTO moves (kind, actor, comment, target_incident_id, reasons, alert_count, alert_scopes,"
            " source_incident_ids) VALUES ('link', 'x', 'c', $1, '{duplicate}', 0, '{}', '{}')",
            b.incident_id,
        )
    # Redirects end: never to a redirected incident, never to itself.
    (c,) = await ingest(alert_in("c", entities=[("device", "c")]))
    await pool.execute("UPDATE alerts SET incident_id = $1 WHERE incident_id = $2", b.incident_id, a.incident_id)
    await pool.execute(
        "UPDATE incidents SET status = 'redirected', redirect_incident_id = $2, alert_count = 0 WHERE id = $1",
        a.incident_id,
        b.incident_id,
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "UPDATE incidents SET status = 'redirected', redirect_incident_id = $2 WHERE id = $1",
            c.incident_id,
            a.incident_id,
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "UPDATE incidents SET status = 'redirected', redirect_incident_id = id WHERE id = $1", c.incident_id
        )
    with pytest.raises(asyncpg.PostgresError):  # provenance is append-only
        await pool.execute("DELETE FROM move_items")


NODE = """
query($id: ID!) {
  node(id: $id) {
    ... on Incident { id status alertCount redirectIncident { id } }
    ... on Move { id viewerCanRevert }
  }
}
"""


async def node(api, id):
    return (await api(NODE, id=id))["node"]


async def test_reverting_a_merge_whose_target_was_merged_since_keeps_that_redirect(admin, ingest, pool):
    a, b, c, d = await ingest(*[alert_in(x, entities=[("device", x)]) for x in "abcd"])
    A, B, C, D = (x.incident_id for x in (a, b, c, d))
    await link(admin, [b.id], existingIncidentId=inc(A))  # B emptied: RESOLVED
    first = await merge(admin, [C, B], target=inc(C))  # B -> C, no alerts moved
    assert first["errors"] == []
    assert (await merge(admin, [D, C], target=inc(D)))["errors"] == []  # C -> D: B -> C -> D, a chain
    assert (await merge(admin, [A, D], target=inc(A)))["errors"] == []  # D -> A
    assert (await node(admin, first["move"]["id"]))["viewerCanRevert"] is True

    # The revert touches C (the merge's target), whose redirect to D (itself redirected since) it keeps.
    result = await revert(admin, first["move"]["id"])

    assert result["errors"] == []
    incidents = {i["id"]: i for i in result["incidents"]}
    assert incidents[inc(B)] == {"id": inc(B), "status": "RESOLVED", "alertCount": 0, "redirectIncident": None}
    assert incidents[inc(C)] == {
        "id": inc(C),
        "status": "REDIRECTED",
        "alertCount": 0,
        "redirectIncident": {"id": inc(D)},
    }
    assert await node(admin, inc(D)) == {
        "id": inc(D),
        "status": "REDIRECTED",
        "alertCount": 0,
        "redirectIncident": {"id": inc(A)},
    }
    await assert_invariants(pool)


async def test_redoing_a_merge_is_refused_when_a_source_was_brought_alerts_since(admin, ingest, pool):
    a, b, c = await ingest(*[alert_in(x, entities=[("device", x)]) for x in "abc"])
    A, B = a.incident_id, b.incident_id
    merged = await merge(admin, [A, B], target=inc(A))  # b -> A, B REDIRECTED
    undo = (await revert(admin, merged["move"]["id"]))["move"]["id"]  # b -> B, B open again
    assert (await node(admin, undo))["viewerCanRevert"] is True
    brought = await link(admin, [c.id], existingIncidentId=inc(B))  # c -> B
    assert brought["errors"] == []
    assert (await node(admin, undo))["viewerCanRevert"] is False
    moves_before = await pool.fetchval("SELECT count(*) FROM moves")

    result = await revert(admin, undo)  # would take b to A and redirect B, holding c

    assert [(e["code"], e["field"], e["incidentIds"], e["alertIds"]) for e in result["errors"]] == [
        ("INCIDENT_CHANGED_SINCE", "moveId", [inc(B)], [alert_id(c.id)])
    ]
    assert result["move"] is None
    assert await pool.fetchval("SELECT count(*) FROM moves") == moves_before
    assert await node(admin, inc(B)) == {"id": inc(B), "status": "ACTIVE", "alertCount": 2, "redirectIncident": None}
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", b.id) == B
    await assert_invariants(pool)

    # With c moved out again (by reverting its move), the merge can be redone.
    assert (await revert(admin, brought["move"]["id"]))["errors"] == []
    assert (await node(admin, undo))["viewerCanRevert"] is True
    redo = await revert(admin, undo)
    assert redo["errors"] == []
    assert await node(admin, inc(B)) == {
        "id": inc(B),
        "status": "REDIRECTED",
        "alertCount": 0,
        "redirectIncident": {"id": inc(A)},
    }
    await assert_invariants(pool)


async def test_the_database_says_a_redirected_incident_holds_no_alert(admin, ingest, pool):
    a, b = await ingest(alert_in("a", entities=[("device", "a")]), alert_in("b", entities=[("device", "b")]))
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "UPDATE incidents SET status = 'redirected', redirect_incident_id = $2 WHERE id = $1",
            a.incident_id,
            b.incident_id,
        )


async def test_a_revert_that_would_change_an_incident_the_viewer_cannot_see_is_refused(make_user, admin, ingest, pool):
    """A merge of an emptied source moves no alert: its revert must not let a viewer who cannot
    see that source reopen it (found in review)."""
    (h,) = await ingest(alert_in("h", scope="hr", entities=[("device", "hr-1")]))
    (h2,) = await ingest(alert_in("h2", scope="hr", entities=[("device", "hr-2")]))
    (t,) = await ingest(alert_in("t", entities=[("device", "ws-1")]))
    await link(admin, [h.id], existingIncidentId=inc(h2.incident_id))  # h's incident is empty now
    merged = await merge(admin, [h.incident_id, t.incident_id], target=inc(t.incident_id))
    analyst = await make_user("analyst", "default=write")
    assert (await analyst("query($id: ID!) { node(id: $id) { id } }", id=inc(h.incident_id)))["node"] is None
    before = await status(pool, h.incident_id)

    refused = await revert(analyst, merged["move"]["id"])

    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    assert inc(h.incident_id) not in str(refused)
    assert await status(pool, h.incident_id) == before == "redirected"
    assert (await revert(admin, merged["move"]["id"]))["errors"] == []
