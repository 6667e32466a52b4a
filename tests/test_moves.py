"""Provenance: moves as objects (node, Incident.moves, ActivityLogEntry.move, LinkAlertsPayload.move)
and every alert's history, under the visibility rules."""

from __future__ import annotations

from tests.conftest import alert_id, alert_in, inc, move_id
from tests.invariants import assert_invariants
from tests.test_merge import merge
from tests.test_revert import link, revert

HISTORY = """
query($id: ID!) { alert(id: $id) { incident { id } history { incident { id } move { id kind } at } } }
"""
MOVES = """
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  incident(id: $id) { moves(first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id number kind actor comment alertCount target { id } sources { id } } } } }
}
"""
NODE = """
query($id: ID!) { node(id: $id) { __typename id ... on Move { kind comment alertCount
  items { totalCount edges { node { alert { id } from { id } to { id } } } } } } }
"""
LOG = """
query($id: ID!) { incident(id: $id) { activityLog { edges { node { kind move { id kind } } } } } }
"""


async def test_history_lists_every_incident_an_alert_has_been_in(admin, ingest, pool):
    a, b, c = await ingest(alert_in("a"), alert_in("b"), alert_in("c"))
    first = await link(admin, [a.id], existingIncidentId=inc(b.incident_id))
    second = await link(admin, [a.id], existingIncidentId=inc(c.incident_id))
    undo = await revert(admin, second["move"]["id"])

    alert = (await admin(HISTORY, id=alert_id(a.id)))["alert"]

    history = [(h["incident"]["id"], h["move"] and h["move"]["id"]) for h in alert["history"]]
    assert history == [
        (inc(a.incident_id), None),  # where ingestion put it
        (inc(b.incident_id), first["move"]["id"]),
        (inc(c.incident_id), second["move"]["id"]),
        (inc(b.incident_id), undo["move"]["id"]),
    ]
    assert alert["history"][-1]["incident"] == alert["incident"]  # it ends where the alert is
    assert [h["at"] for h in alert["history"]] == sorted(h["at"] for h in alert["history"])
    await assert_invariants(pool)


async def test_an_untouched_alert_has_one_placement(admin, ingest):
    (a,) = await ingest(alert_in("a"))
    history = (await admin(HISTORY, id=alert_id(a.id)))["alert"]["history"]
    assert [(h["incident"]["id"], h["move"]) for h in history] == [(inc(a.incident_id), None)]


async def test_incident_moves_newest_first_both_ways(admin, ingest):
    a, b, c, d = await ingest(*[alert_in(x, entities=[("device", x)]) for x in "abcd"])
    target = inc(d.incident_id)
    made = []
    for x in (a, b, c):
        made.append((await link(admin, [x.id], existingIncidentId=target))["move"]["id"])
    page = (await admin(MOVES, id=target, first=2))["incident"]["moves"]
    assert page["totalCount"] == 3
    assert [e["node"]["id"] for e in page["edges"]] == made[::-1][:2]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = (await admin(MOVES, id=target, first=2, after=page["pageInfo"]["endCursor"]))["incident"]["moves"]
    assert [e["node"]["id"] for e in rest["edges"]] == [made[0]]
    back = (await admin(MOVES, id=target, last=2, before=rest["pageInfo"]["startCursor"]))["incident"]["moves"]
    assert [e["node"]["id"] for e in back["edges"]] == made[::-1][:2]
    node = page["edges"][0]["node"]
    assert node == {
        "id": made[2],
        "number": int(made[2].split("_")[1]),
        "kind": "LINK",
        "actor": "admin",
        "comment": "same host",
        "alertCount": 1,
        "target": {"id": target},
        "sources": [{"id": inc(c.incident_id)}],
    }


async def test_node_and_log_entries_lead_to_the_move(admin, ingest):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    moved = await link(admin, [a.id], existingIncidentId=inc(b.incident_id))
    node = (await admin(NODE, id=moved["move"]["id"]))["node"]
    assert node["__typename"] == "Move" and node["kind"] == "LINK" and node["items"]["totalCount"] == 1
    assert node["items"]["edges"][0]["node"] == {
        "alert": {"id": alert_id(a.id)},
        "from": {"id": inc(a.incident_id)},
        "to": {"id": inc(b.incident_id)},
    }
    log = (await admin(LOG, id=inc(b.incident_id)))["incident"]["activityLog"]["edges"]
    moves_of = {e["node"]["kind"]: e["node"]["move"] for e in log}
    assert moves_of["ALERT_LINKED"] == {"id": moved["move"]["id"], "kind": "LINK"}
    assert moves_of["INCIDENT_CREATED"] is None  # ingestion's
    assert (await admin(NODE, id=move_id(999)))["node"] is None


async def test_a_replayed_or_empty_link_and_its_move(admin, ingest):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    mutation = """
    mutation($ids: [ID!]!, $to: ID!, $key: String) { linkAlerts(alertIds: $ids, target: {existingIncidentId: $to},
      comment: "c", idempotencyKey: $key) { move { id } errors { code } } }
    """
    first = (await admin(mutation, ids=[alert_id(a.id)], to=inc(b.incident_id), key="k"))["linkAlerts"]
    replay = (await admin(mutation, ids=[alert_id(a.id)], to=inc(b.incident_id), key="k"))["linkAlerts"]
    assert first["move"] is not None and replay["move"] == first["move"]
    nothing = (await admin(mutation, ids=[alert_id(a.id)], to=inc(b.incident_id), key=None))["linkAlerts"]
    assert nothing == {"move": None, "errors": []}  # every alert already there: no move


async def test_partial_grants_see_only_what_they_may_read(make_user, admin, ingest, pool):
    analyst = await make_user("analyst", "default=write")
    (d,) = await ingest(alert_in("d", entities=[("device", "d")]))
    (h,) = await ingest(alert_in("h", scope="hr", entities=[("device", "h")]))
    (t,) = await ingest(alert_in("t", entities=[("device", "t")]))
    moved = await link(admin, [d.id, h.id], existingIncidentId=inc(t.incident_id))
    node = (await analyst(NODE, id=moved["move"]["id"]))["node"]
    # The hr alert is neither counted nor listed, and the comment (about it too) is hidden.
    assert node["comment"] is None and node["alertCount"] == 1 and node["items"]["totalCount"] == 1
    assert [e["node"]["alert"]["id"] for e in node["items"]["edges"]] == [alert_id(d.id)]
    page = (await analyst(MOVES, id=inc(t.incident_id)))["incident"]["moves"]
    assert page["edges"][0]["node"]["sources"] == [{"id": inc(d.incident_id)}]  # not h's incident
    # Someone who may read neither the alerts nor the incidents the move touched does not see it.
    other = await make_user("other", "other=read")
    assert (await other(NODE, id=moved["move"]["id"]))["node"] is None
    # A merge of an hr incident: the analyst's log says "alerts", not how many.
    (h2,) = await ingest(alert_in("h2", scope="hr", entities=[("device", "h2")]))
    result = await merge(admin, [t.incident_id, h2.incident_id], target=inc(t.incident_id))
    assert result["errors"] == []
    node = (await analyst(NODE, id=result["move"]["id"]))["node"]
    assert node["alertCount"] == 0 and node["comment"] is None and node["items"]["edges"] == []


async def test_history_needs_the_queue_permission(make_user, ingest):
    noqueue = await make_user("noqueue", "*=write", queue=False)
    (a,) = await ingest(alert_in("a"))
    errors = await noqueue.errors(HISTORY, id=alert_id(a.id))
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"


MOVE_BY = """query($id: ID, $number: Int) {
  move(id: $id, number: $number) { id number kind items(first: 5) { totalCount } }
}"""


async def test_a_move_by_id_or_by_number(make_user, admin, ingest):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    moved = (await link(admin, [a.id], existingIncidentId=inc(b.incident_id)))["move"]
    number = int(moved["id"].removeprefix("move_"))
    expected = {"id": moved["id"], "number": number, "kind": "LINK", "items": {"totalCount": 1}}

    assert (await admin(MOVE_BY, number=number))["move"] == expected
    assert (await admin(MOVE_BY, id=moved["id"]))["move"] == expected
    assert (await admin(MOVE_BY, number=number + 1000))["move"] is None
    for variables in ({}, {"id": moved["id"], "number": number}, {"id": inc(1)}):
        errors = await admin.errors(MOVE_BY, **variables)
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT", variables
    noqueue = await make_user("noqueue", "*=write", queue=False)
    errors = await noqueue.errors(MOVE_BY, number=number)
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
