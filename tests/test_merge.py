"""mergeIncidents: merging incidents into one, as an analyst or a script sees it."""

from __future__ import annotations

import asyncio
import dataclasses

from app import config
from app.domain import moves
from tests.conftest import alert_id, alert_in, inc, waiting_backend_xid
from tests.invariants import assert_invariants

MERGE = """
mutation($ids: [ID!]!, $target: ID, $comment: String!, $reasons: [MergeReason!], $key: String) {
  mergeIncidents(incidentIds: $ids, targetIncidentId: $target, comment: $comment, reasons: $reasons,
                 idempotencyKey: $key) {
    target { id status alertCount severity }
    sources { id status alertCount redirectIncident { id } }
    move { id kind actor comment reasons alertCount target { id } sources { id } viewerCanRevert
           items(first: 100) { totalCount edges { node { alert { id } from { id } to { id } } } } }
    logEntries { kind incident { id } otherIncident { id } message comment move { id } }
    errors { code message field incidentIds }
  }
}
"""
LOG = """
query($id: ID!) { incident(id: $id) { status activityLog { edges { node { kind message comment move { id } } } } } }
"""


async def merge(api, ids, comment="same campaign", **variables):
    data = await api(MERGE, ids=[inc(i) if isinstance(i, int) else i for i in ids], comment=comment, **variables)
    return data["mergeIncidents"]


async def three_incidents(ingest):
    """Incidents of 3, 2 and 1 alerts, on unrelated hosts."""
    big = await ingest(*[alert_in(f"b{i}", minutes=i, severity="low", entities=[("device", "big")]) for i in range(3)])
    mid = await ingest(*[alert_in(f"m{i}", minutes=i, severity="high", entities=[("device", "mid")]) for i in range(2)])
    small = await ingest(alert_in("s0", entities=[("device", "small")]))
    return big, mid, small


async def test_merge_moves_every_alert_to_the_biggest_incident_and_redirects_the_sources(admin, ingest, pool):
    big, mid, small = await three_incidents(ingest)
    b, m, s = big[0].incident_id, mid[0].incident_id, small[0].incident_id

    result = await merge(admin, [s, m, b], reasons=["SAME_ACTOR", "SAME_ACTOR", "DUPLICATE"])

    assert result["errors"] == []
    assert result["target"] == {"id": inc(b), "status": "ACTIVE", "alertCount": 6, "severity": "HIGH"}
    assert result["sources"] == [
        {"id": inc(m), "status": "REDIRECTED", "alertCount": 0, "redirectIncident": {"id": inc(b)}},
        {"id": inc(s), "status": "REDIRECTED", "alertCount": 0, "redirectIncident": {"id": inc(b)}},
    ]
    move = result["move"]
    assert move["kind"] == "MERGE" and move["actor"] == "admin" and move["comment"] == "same campaign"
    assert move["reasons"] == ["SAME_ACTOR", "DUPLICATE"]
    assert move["alertCount"] == 3 and move["target"] == {"id": inc(b)}
    assert move["sources"] == [{"id": inc(m)}, {"id": inc(s)}]
    assert move["viewerCanRevert"] is True
    items = [e["node"] for e in move["items"]["edges"]]
    assert move["items"]["totalCount"] == 3
    assert items == [
        {"alert": {"id": alert_id(a.id)}, "from": {"id": inc(a.incident_id)}, "to": {"id": inc(b)}}
        for a in sorted([*mid, *small], key=lambda a: a.id)
    ]
    # One summary entry per source on each side, each pointing at the merge.
    entries = [(e["kind"], e["incident"]["id"], e["otherIncident"]["id"]) for e in result["logEntries"]]
    assert entries == [
        ("INCIDENT_REDIRECTED", inc(m), inc(b)),
        ("INCIDENT_MERGED", inc(b), inc(m)),
        ("INCIDENT_REDIRECTED", inc(s), inc(b)),
        ("INCIDENT_MERGED", inc(b), inc(s)),
    ]
    assert {e["move"]["id"] for e in result["logEntries"]} == {move["id"]}
    assert (
        result["logEntries"][1]["message"]
        == f"Incident {m} was merged into this incident by admin: its 2 alerts moved here."
    )
    assert (
        result["logEntries"][0]["message"]
        == f"Merged into incident {b} by admin: this incident's 2 alerts moved there."
    )
    assert {r["incident_id"] for r in await pool.fetch("SELECT incident_id FROM alerts")} == {b}
    await assert_invariants(pool)


async def test_explicit_target_and_resolved_target_reopens(admin, ingest, pool):
    big, mid, small = await three_incidents(ingest)
    s = small[0].incident_id
    await pool.execute("UPDATE incidents SET status = 'resolved' WHERE id = $1", s)

    result = await merge(admin, [big[0].incident_id, mid[0].incident_id, s], target=inc(s))

    assert result["errors"] == []
    assert result["target"]["id"] == inc(s) and result["target"]["status"] == "ACTIVE"
    assert result["target"]["alertCount"] == 6
    assert result["logEntries"][-1]["kind"] == "INCIDENT_REOPENED"
    await assert_invariants(pool)


async def test_every_problem_at_once_and_nothing_changes(admin, ingest, pool):
    big, mid, small = await three_incidents(ingest)
    assert (await merge(admin, [big[0].incident_id, small[0].incident_id]))["errors"] == []
    result = await merge(
        admin, [mid[0].incident_id, small[0].incident_id, "inc_999", "junk"], comment="  ", target="inc_5"
    )
    codes = {(e["code"], e["field"]): e["incidentIds"] for e in result["errors"]}
    assert codes[("INVALID_INPUT", "comment")] == []
    assert codes[("INVALID_INPUT", "targetIncidentId")] == []
    assert codes[("INCIDENT_NOT_FOUND", "incidentIds")] in (["junk"], ["inc_999"])
    assert result["target"] is None and result["move"] is None
    # Once the ids are right, the redirected one is named.
    result = await merge(admin, [mid[0].incident_id, small[0].incident_id])
    assert [(e["code"], e["incidentIds"]) for e in result["errors"]] == [
        ("ALREADY_REDIRECTED", [inc(small[0].incident_id)])
    ]
    # Too few incidents.
    result = await merge(admin, [mid[0].incident_id, mid[0].incident_id])
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID_INPUT", "incidentIds")]
    await assert_invariants(pool)
    assert await pool.fetchval("SELECT count(*) FROM moves") == 1  # the first merge only


async def test_forbidden_when_a_source_holds_alerts_the_viewer_may_not_move(make_user, ingest, pool):
    analyst = await make_user("analyst", "default=write", "hr=read")
    (a,) = await ingest(alert_in("a", entities=[("device", "x")]))
    h1, h2 = await ingest(
        alert_in("h1", scope="hr", entities=[("device", "y")]), alert_in("h2", scope="hr", entities=[("device", "z")])
    )
    # A read-only incident can be the target (its alerts stay), not a source.
    result = await merge(analyst, [a.incident_id, h1.incident_id])
    assert result["errors"] == [] and result["target"]["id"] == inc(h1.incident_id)
    result = await merge(analyst, [h1.incident_id, h2.incident_id])
    assert [(e["code"], e["incidentIds"]) for e in result["errors"]] == [("FORBIDDEN", [inc(h2.incident_id)])]
    noqueue = await make_user("noqueue", "*=write", queue=False)
    result = await merge(noqueue, [h1.incident_id, h2.incident_id])
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("FORBIDDEN", None)]
    await assert_invariants(pool)


async def test_invisible_incidents_are_not_found_and_messages_name_only_what_the_viewer_sees(
    make_user, admin, ingest, pool
):
    analyst = await make_user("analyst", "default=write")
    (a,) = await ingest(alert_in("a", entities=[("device", "x")]))
    (h,) = await ingest(alert_in("h", scope="hr", entities=[("device", "y")]))
    result = await merge(analyst, [a.incident_id, h.incident_id])
    assert [(e["code"], e["incidentIds"]) for e in result["errors"]] == [("INCIDENT_NOT_FOUND", [inc(h.incident_id)])]
    # Merged by admin: the analyst sees the target (it holds their alert), not the hr source.
    result = await merge(admin, [a.incident_id, h.incident_id], target=inc(a.incident_id))
    assert result["errors"] == []
    log = (await analyst(LOG, id=inc(a.incident_id)))["incident"]["activityLog"]["edges"]
    merged = next(e["node"] for e in log if e["node"]["kind"] == "INCIDENT_MERGED")
    assert (
        merged["message"]
        == "An incident you cannot view was merged into this incident by admin: its alerts moved here."
    )
    assert merged["comment"] is None
    assert merged["move"] is not None


async def test_replays_with_an_idempotency_key_return_the_first_result(admin, ingest, pool):
    big, mid, small = await three_incidents(ingest)
    ids = [big[0].incident_id, mid[0].incident_id]
    first = await merge(admin, ids, key="ticket-9")
    again = await merge(admin, ids, key="ticket-9")
    assert first["errors"] == [] and again == first
    other = await merge(admin, [big[0].incident_id, small[0].incident_id], key="ticket-9")
    assert [(e["code"], e["field"]) for e in other["errors"]] == [("INVALID_INPUT", "idempotencyKey")]
    assert await pool.fetchval("SELECT count(*) FROM moves") == 1


async def test_too_many_alerts(admin, ingest, pool, monkeypatch):
    big, mid, small = await three_incidents(ingest)
    monkeypatch.setattr(config, "_settings", dataclasses.replace(config.settings(), merge_max_alerts=2))
    result = await merge(admin, [big[0].incident_id, mid[0].incident_id, small[0].incident_id])
    assert [e["code"] for e in result["errors"]] == ["TOO_MANY_ALERTS"]


INCIDENT = "query($id: ID!) { node(id: $id) { ... on Incident { status redirectIncident { id } } } }"


async def test_merging_a_target_again_leaves_a_chain_that_ends(admin, ingest, pool):
    big, mid, small = await three_incidents(ingest)
    b, m, s = big[0].incident_id, mid[0].incident_id, small[0].incident_id
    assert (await merge(admin, [m, s], target=inc(m)))["errors"] == []  # s into m
    assert (await merge(admin, [b, m], target=inc(b)))["errors"] == []  # m into b: s -> m -> b

    # s still points at m, as it happened; following redirects ends at b, which is not redirected.
    seen, at = [], inc(s)
    while (found := (await admin(INCIDENT, id=at))["node"])["status"] == "REDIRECTED":
        seen.append(at)
        at = found["redirectIncident"]["id"]
        assert len(seen) <= 3
    assert seen == [inc(s), inc(m)] and at == inc(b)
    # Merging into a REDIRECTED incident is refused, so a chain cannot loop.
    result = await merge(admin, [b, s], target=inc(s))
    assert [(e["code"], e["incidentIds"]) for e in result["errors"]] == [("ALREADY_REDIRECTED", [inc(s)])]
    await assert_invariants(pool)


async def test_a_merge_waiting_for_a_move_holds_no_transaction_id(admin, ingest, pool):
    # The change stream delivers a change once every transaction with a lower id has ended
    # (app/domain/changes.py): a merge that took an id and then waited would hold back every
    # change committed meanwhile. Given a move in progress on the smallest incident (it holds the
    # incident, as moves.wait_for_incidents does, and its alert's row)
    big, mid, small = await three_incidents(ingest)
    b, m, s = big[0].incident_id, mid[0].incident_id, small[0].incident_id
    holder = await pool.acquire()
    held = holder.transaction()
    await held.start()
    waiting = None
    try:
        await moves.wait_for_incidents(holder, [s])
        await holder.execute("SELECT 1 FROM alerts WHERE incident_id = $1 FOR UPDATE", s)
        # When a merge of the three waits for it (it would lock the middle one's alerts first)
        waiting = asyncio.create_task(merge(admin, [s, m, b]))
        xid = await waiting_backend_xid(pool, holder)
        # Then it waits holding no transaction id
        assert xid is None
    finally:
        await held.rollback()
        await pool.release(holder)
        result = await waiting if waiting is not None else None
    # and merges once the move is gone
    assert result["errors"] == [] and result["target"]["alertCount"] == 6
