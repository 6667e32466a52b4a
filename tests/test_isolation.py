"""Isolation between scopes: what a viewer learns of what they may not read.

Each test is one path by which information used to cross a scope (issue "Isolation: nothing
crosses a scope"), seen as a finance analyst would see it.
"""

from __future__ import annotations

from tests.conftest import alert_in

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
    variables = {"ids": [str(finance.id)], "target": {"createNew": True}, "comment": "split", "key": "k-1"}
    first = (await fin(MOVE, **variables))["linkAlerts"]
    created = first["targetIncident"]["id"]

    await admin(MOVE, ids=[str(default.id)], target={"existingIncidentId": created}, comment="admin secret: ws-7 owner")
    await admin(MOVE, ids=[str(finance.id)], target={"existingIncidentId": str(finance.incident_id)}, comment="back")

    replay = (await fin(MOVE, **variables))["linkAlerts"]
    assert replay["errors"] == []
    assert replay["targetIncident"] is None
    assert created not in {i["id"] for i in replay["sourceIncidents"]}
    for entry in replay["logEntries"]:
        assert entry["incident"]["id"] != created
        assert "admin secret" not in (entry["comment"] or "")
    assert (await fin(LOG, id=created))["incident"] is None


async def test_a_log_entry_about_an_unreadable_alert_hides_its_comment_and_unseen_incident_numbers(make_user, admin, ingest):
    """Given an hr alert moved by an admin into an incident a default-scope analyst can see, from
    an incident they cannot see, when the analyst reads the log, the entry about the hr alert has
    neither the admin's comment nor the number of the incident it came from."""
    dana = await make_user("dana", "default=read")
    visible, secret = await ingest(
        alert_in("d1", "Sign-in on WS-1", entities=[("device", "ws-1")]),
        alert_in("h1", "Payroll export", scope="hr", entities=[("device", "hr-9")]),
    )
    hr_incident = secret.incident_id
    await admin(MOVE, ids=[str(secret.id)], target={"existingIncidentId": str(visible.incident_id)},
                comment="payroll of j.doe, see HR case 77")

    log = [e["node"] for e in (await dana(LOG, id=str(visible.incident_id)))["incident"]["activityLog"]["edges"]]
    [linked] = [e for e in log if e["kind"] == "ALERT_LINKED"]
    assert linked["comment"] is None
    assert linked["alert"] is None and linked["otherIncident"] is None
    assert linked["message"] == "An alert you cannot view was moved here from an incident you cannot view by admin."
    assert str(hr_incident) not in "".join(e["message"] for e in log)

    # The admin, who may read it all, sees both.
    admin_log = [e["node"] for e in (await admin(LOG, id=str(visible.incident_id)))["incident"]["activityLog"]["edges"]]
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
    await pool.execute(
        "UPDATE incidents SET status = 'redirected', redirect_incident_id = $2 WHERE id = $1",
        other.incident_id, secret.incident_id,
    )
    result = (await dana(MOVE, ids=[str(mine.id)], target={"existingIncidentId": str(other.incident_id)}, comment="c"))
    [error] = result["linkAlerts"]["errors"]
    assert error["code"] == "TARGET_NOT_LINKABLE"
    assert str(secret.incident_id) not in error["message"]


async def test_without_the_queue_permission_incidents_cannot_be_opened_by_number(make_user, ingest):
    """Walking incident numbers is browsing the queue; following a readable alert is not."""
    reader = await make_user("reader", "*=read", queue=False)
    [alert] = await ingest(alert_in("a1", entities=[("device", "ws-1")]))

    errors = await reader.errors("query($id: ID!) { incident(id: $id) { id } }", id=str(alert.incident_id))
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
    found = await reader("query($id: ID!) { alert(id: $id) { id incident { id } } }", id=str(alert.id))
    assert found["alert"]["incident"]["id"] == str(alert.incident_id)
