"""Isolation between scopes: what a viewer learns of what they may not read.

Each test is one path by which information used to cross a scope (issue "Isolation: nothing
crosses a scope"), seen as a finance analyst would see it.
"""

from __future__ import annotations

from tests.conftest import alert_id, alert_in, inc, number_of
from tests.invariants import redirect_by_hand

MOVE = """
mutation($ids: [ID!]!, $target: LinkTarget!, $comment: String!, $key: String) {
  linkAlerts(alertIds: $ids, target: $target, comment: $comment, idempotencyKey: $key) {
    targetIncident { id name severity alertCount }
    sourceIncidents { id }
    alerts { id }
    logEntries { kind message comment incident { id } }
    errors { code message field }
  }
}
"""
LOG = """
query($id: ID!) { incident(id: $id) { id activityLog { edges { node { kind message comment alert { id } otherIncident { id } } } } } }
"""


async def test_a_replayed_move_shows_only_what_the_viewer_may_see_now(make_user, admin, ingest):
    """Given a finance analyst who split a finance alert into a new incident with a key, and an
    admin who then moved a default alert in and the finance alert out, when the analyst replays
    the key, the answer shows nothing of the incident they can no longer see."""
    fin = await make_user("fin", "finance=write")
    finance, default = await ingest(
        alert_in("f1", "Wire transfer anomaly", scope="finance", entities=[("device", "fin-1")]),
        alert_in("d1", "Port scan on WS-7", entities=[("device", "ws-7")]),
    )
    variables = {"ids": [alert_id(finance.id)], "target": {"createNew": True}, "comment": "split", "key": "k-1"}
    first = (await fin(MOVE, **variables))["linkAlerts"]
    created = first["targetIncident"]["id"]

    await admin(
        MOVE, ids=[alert_id(default.id)], target={"existingIncidentId": created}, comment="admin secret: ws-7 owner"
    )
    await admin(
        MOVE, ids=[alert_id(finance.id)], target={"existingIncidentId": inc(finance.incident_id)}, comment="back"
    )

    replay = (await fin(MOVE, **variables))["linkAlerts"]
    assert replay["errors"] == []
    assert replay["targetIncident"] is None
    assert created not in {i["id"] for i in replay["sourceIncidents"]}
    for entry in replay["logEntries"]:
        assert entry["incident"]["id"] != created
        assert "admin secret" not in (entry["comment"] or "")
    assert (await fin(LOG, id=created))["incident"] is None


async def test_a_log_entry_about_an_unreadable_alert_hides_its_comment_and_unseen_incident_numbers(
    make_user, admin, ingest
):
    """Given an hr alert moved by an admin into an incident a default-scope analyst can see, from
    an incident they cannot see, when the analyst reads the log, the entry about the hr alert has
    neither the admin's comment nor the number of the incident it came from."""
    dana = await make_user("dana", "default=read")
    visible, secret = await ingest(
        alert_in("d1", "Sign-in on WS-1", entities=[("device", "ws-1")]),
        alert_in("h1", "Payroll export", scope="hr", entities=[("device", "hr-9")]),
    )
    hr_incident = secret.incident_id
    await admin(
        MOVE,
        ids=[alert_id(secret.id)],
        target={"existingIncidentId": inc(visible.incident_id)},
        comment="payroll of j.doe, see HR case 77",
    )

    log = [e["node"] for e in (await dana(LOG, id=inc(visible.incident_id)))["incident"]["activityLog"]["edges"]]
    [linked] = [e for e in log if e["kind"] == "ALERT_LINKED"]
    assert linked["comment"] is None
    assert linked["alert"] is None and linked["otherIncident"] is None
    assert linked["message"] == "An alert you cannot view was moved here from an incident you cannot view by admin."
    assert str(hr_incident) not in "".join(e["message"] for e in log)
    assert inc(hr_incident) not in str(log)

    # The admin, who may read it all, sees both.
    admin_log = [e["node"] for e in (await admin(LOG, id=inc(visible.incident_id)))["incident"]["activityLog"]["edges"]]
    [linked] = [e for e in admin_log if e["kind"] == "ALERT_LINKED"]
    assert linked["comment"] == "payroll of j.doe, see HR case 77"
    assert linked["message"].endswith(f"was moved here from incident {hr_incident} by admin.")


async def test_a_move_to_a_merged_incident_does_not_name_where_it_went(make_user, ingest, pool):
    """Given an incident merged into one the analyst cannot see, the refusal names neither."""
    dana = await make_user("dana", "default=write")
    mine, other, secret = await ingest(
        alert_in("d1", entities=[("device", "ws-1")]),
        alert_in("d2", entities=[("device", "ws-2")]),
        alert_in("h1", scope="hr", entities=[("device", "hr-1")]),
    )
    await redirect_by_hand(pool, other.incident_id, secret.incident_id)
    result = await dana(
        MOVE, ids=[alert_id(mine.id)], target={"existingIncidentId": inc(other.incident_id)}, comment="c"
    )
    [error] = result["linkAlerts"]["errors"]
    assert error["code"] == "TARGET_NOT_LINKABLE"
    assert str(secret.incident_id) not in error["message"]
    assert inc(secret.incident_id) not in str(result)


async def test_without_the_queue_permission_incidents_cannot_be_opened_by_number(make_user, ingest):
    """Walking incident numbers is browsing the queue; following a readable alert is not."""
    reader = await make_user("reader", "*=read", queue=False)
    [alert] = await ingest(alert_in("a1", entities=[("device", "ws-1")]))

    errors = await reader.errors("query($id: ID!) { incident(id: $id) { id } }", id=inc(alert.incident_id))
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
    found = await reader("query($id: ID!) { alert(id: $id) { id incident { id } } }", id=alert_id(alert.id))
    assert found["alert"]["incident"]["id"] == inc(alert.incident_id)


DERIVED = """
query($id: ID!, $q: String!) {
  incident(id: $id) {
    id name status severity lastActivityAt alertCount
    alerts { totalCount edges { cursor node { id title severity detectedAt } } }
  }
  incidents(filter: {search: $q}) { totalCount edges { node { id name severity lastActivityAt alertCount } } }
}
"""


async def test_two_worlds_that_differ_only_in_unreadable_alerts_look_the_same(make_user, admin, ingest, pool):
    """World A: a default-scope incident into which an admin moved a later, high-severity hr
    alert. World B: the same incident without it. A default-scope analyst sees the same bytes."""

    async def world(with_hidden: bool) -> dict:
        await pool.execute(
            "TRUNCATE idempotency_keys, activity_log, move_items, move_incidents, moves, alert_entities, incident_evidence, incident_evidence_text, alerts, incidents"
            " RESTART IDENTITY CASCADE"
        )
        [visible] = await ingest(alert_in("d1", "Beacon on WS-1", severity="low", entities=[("device", "ws-1")]))
        if with_hidden:
            [hidden] = await ingest(
                alert_in(
                    "h1",
                    "Payroll export by j.doe",
                    scope="hr",
                    severity="high",
                    minutes=10,
                    entities=[("user", "j.doe")],
                )
            )
            moved = await admin(
                MOVE,
                ids=[alert_id(hidden.id)],
                target={"existingIncidentId": inc(visible.incident_id)},
                comment="same actor",
            )
            assert moved["linkAlerts"]["errors"] == []
        dana = await make_user(f"dana-{with_hidden}", "default=read")
        return await dana(DERIVED, id=inc(visible.incident_id), q="beacon")

    world_a, world_b = await world(True), await world(False)
    assert world_a["incident"]["severity"] == "LOW"
    assert world_a == world_b


async def test_an_incident_named_after_unreadable_alerts_shows_its_number_and_its_name_is_not_searchable(
    make_user, admin, ingest
):
    dana = await make_user("dana", "default=read")
    secret, visible = await ingest(
        alert_in("h1", "Payroll export by j.doe", scope="hr", entities=[("user", "j.doe")]),
        alert_in("d1", "Sign-in on WS-1", minutes=1, entities=[("device", "ws-1")]),
    )
    await admin(MOVE, ids=[alert_id(visible.id)], target={"existingIncidentId": inc(secret.incident_id)}, comment="c")

    seen = await dana(DERIVED, id=inc(secret.incident_id), q="payroll")
    assert seen["incident"]["name"] == f"Incident {secret.incident_id}"
    assert seen["incidents"] == {"totalCount": 0, "edges": []}
    assert (await admin(DERIVED, id=inc(secret.incident_id), q="payroll"))["incidents"]["totalCount"] == 1


async def test_ingesting_into_your_scope_tells_you_nothing_of_other_scopes(make_user, admin, pool):
    """Given an engineering incident on srv-9408-51, when a finance source sends a finance alert
    on the same device, it opens an incident of its own: the answer is the same as if no other
    scope had ever seen that device, and the engineering incident is untouched."""
    from tests.test_ingest import detection, send

    engineering = (
        await send(
            admin, detection("e1", "Mimikatz run by j.doe", scope="engineering", entities=[("DEVICE", "srv-9408-51")])
        )
    )["alerts"][0]
    source = await make_user("fin-source", "finance=write", ingest=True)

    answer = await send(source, detection("f1", "Unusual wire", scope="finance", entities=[("DEVICE", "SRV-9408-51")]))
    [incident] = answer["incidents"]
    assert incident["id"] != engineering["incident"]["id"]
    assert incident["name"] == "Unusual wire" and incident["alertCount"] == 1
    assert [e["kind"] for e in answer["logEntries"]] == ["INCIDENT_CREATED"]
    eng = await pool.fetchrow(
        "SELECT alert_count, alert_scopes FROM incidents WHERE id = $1", number_of(engineering["incident"]["id"])
    )
    assert (eng["alert_count"], eng["alert_scopes"]) == (1, ["engineering"])

    # The finance readers cannot open the engineering incident either.
    reader = await make_user("fin", "finance=write")
    assert (await reader("query($id: ID!) { incident(id: $id) { id } }", id=engineering["incident"]["id"]))[
        "incident"
    ] is None


async def test_correlation_across_scopes_is_a_setting(make_user, admin, pool, settings):
    import httpx

    from app.config import Settings
    from app.server import create_app
    from tests.conftest import Api
    from tests.test_ingest import detection, send

    engineering = (await send(admin, detection("e1", scope="engineering", entities=[("DEVICE", "srv-1")])))["alerts"][0]
    app = create_app(Settings(**{**settings.__dict__, "correlation_across_scopes": True}), pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        joined = await send(Api(client, admin.token), detection("f1", scope="finance", entities=[("DEVICE", "srv-1")]))
    assert joined["alerts"][0]["incident"]["id"] == engineering["incident"]["id"]


async def test_the_severity_filter_sees_the_severity_the_viewer_sees(make_user, admin, ingest):
    """A HIGH hr alert moved into dana's LOW incident: for her the incident is LOW, in the
    filter and its count as in the field."""
    dana = await make_user("dana", "default=read")
    low, high = await ingest(
        alert_in("d1", "Beacon on WS-1", severity="low", entities=[("device", "ws-1")]),
        alert_in("h1", "Payroll export", scope="hr", severity="high", entities=[("user", "j.doe")]),
    )
    await admin(MOVE, ids=[alert_id(high.id)], target={"existingIncidentId": inc(low.incident_id)}, comment="c")
    query = "query($s: [Severity!]) { incidents(filter: {severity: $s}) { totalCount edges { node { id severity } } } }"

    assert (await dana(query, s=["HIGH"]))["incidents"] == {"totalCount": 0, "edges": []}
    assert (await dana(query, s=["LOW"]))["incidents"] == {
        "totalCount": 1,
        "edges": [{"node": {"id": inc(low.incident_id), "severity": "LOW"}}],
    }
    high_for_admin = [e["node"]["id"] for e in (await admin(query, s=["HIGH"]))["incidents"]["edges"]]
    assert inc(low.incident_id) in high_for_admin


async def test_an_incident_created_from_unreadable_alerts_keeps_the_movers_words_and_count_to_itself(
    make_user, admin, ingest
):
    """The admin moves two hr alerts into a new incident with a comment, then a default alert in:
    dana sees the incident, but not why or how many the admin moved."""
    dana = await make_user("dana", "default=read")
    h1, h2, d1 = await ingest(
        alert_in("h1", "Payroll export", scope="hr", entities=[("user", "j.doe")]),
        alert_in("h2", "Salary file", scope="hr", entities=[("user", "j.roe")]),
        alert_in("d1", "Sign-in on WS-1", entities=[("device", "ws-1")]),
    )
    created = await admin(
        MOVE, ids=[alert_id(h1.id), alert_id(h2.id)], target={"createNew": True}, comment="payroll of j.doe, HR case 77"
    )
    incident = created["linkAlerts"]["targetIncident"]["id"]
    await admin(MOVE, ids=[alert_id(d1.id)], target={"existingIncidentId": incident}, comment="same user")

    log = [e["node"] for e in (await dana(LOG, id=incident))["incident"]["activityLog"]["edges"]]
    [entry] = [e for e in log if e["kind"] == "INCIDENT_CREATED"]
    assert entry["comment"] is None
    assert entry["message"] == "Incident created by admin to hold alerts moved from other incidents."
    assert all("HR case" not in (e["comment"] or "") for e in log)
    admin_log = [e["node"] for e in (await admin(LOG, id=incident))["incident"]["activityLog"]["edges"]]
    [entry] = [e for e in admin_log if e["kind"] == "INCIDENT_CREATED"]
    assert entry["comment"] == "payroll of j.doe, HR case 77"
    assert entry["message"] == "Incident created by admin to hold 2 alerts moved from other incidents."


async def test_the_queues_cursors_are_sealed(make_user, admin, ingest):
    """A queue cursor holds an incident's last activity, which can come from an alert the viewer
    may not read: it is sealed, so it shows nothing, and an altered one is refused."""
    import base64

    dana = await make_user("dana", "default=read")
    visible, hidden = await ingest(
        alert_in("d1", "Beacon on WS-1", entities=[("device", "ws-1")]),
        alert_in("h1", "Payroll export", scope="hr", minutes=42, entities=[("user", "j.doe")]),
    )
    await ingest(alert_in("d2", "Beacon on WS-2", minutes=-5, entities=[("device", "ws-2")]))
    await admin(MOVE, ids=[alert_id(hidden.id)], target={"existingIncidentId": inc(visible.incident_id)}, comment="c")
    query = "query($after: String) { incidents(first: 1, after: $after) { edges { cursor node { id } } } }"

    [edge] = (await dana(query))["incidents"]["edges"]
    raw = base64.urlsafe_b64decode(edge["cursor"] + "=" * (-len(edge["cursor"]) % 4))
    assert b"12:42" not in raw and b"2026" not in raw and b'"i"' not in raw
    following = (await dana(query, after=edge["cursor"]))["incidents"]["edges"]
    assert [e["node"]["id"] for e in following] != [edge["node"]["id"]]

    altered = edge["cursor"][:-2] + ("A" if edge["cursor"][-2] != "A" else "B") + edge["cursor"][-1]
    errors = await dana.errors(query, after=altered)
    assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]
