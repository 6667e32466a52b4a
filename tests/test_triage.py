"""updateIncident and addComment: an incident's lifecycle, as an analyst or a script sees it."""

from __future__ import annotations

import asyncio

from tests.conftest import alert_id, alert_in, inc
from tests.invariants import redirect_by_hand

UPDATE = """
mutation($id: ID!, $status: IncidentStatus, $assignedTo: String, $classification: Classification,
         $determination: Determination, $comment: String, $key: String) {
  updateIncident(id: $id, status: $status, assignedTo: $assignedTo, classification: $classification,
                 determination: $determination, comment: $comment, idempotencyKey: $key) {
    incident { id status assignedTo classification determination viewerCanUpdate }
    logEntries { kind actor comment message oldStatus newStatus oldAssignee newAssignee
                 oldClassification newClassification oldDetermination newDetermination }
    errors { code field message }
  }
}
"""
COMMENT = """
mutation($id: ID!, $text: String!, $key: String) {
  addComment(incidentId: $id, text: $text, idempotencyKey: $key) {
    incident { id }
    logEntry { kind actor comment message }
    errors { code field message }
  }
}
"""
LOG = """
query($id: ID!) { incident(id: $id) { status assignedTo classification
  activityLog { totalCount edges { node { kind actor comment } } } } }
"""


async def update(api, incident: int, **variables) -> dict:
    """updateIncident with only the given arguments (an absent argument leaves its value as it is)."""
    given = ", ".join(f"{name}: ${name}" for name in variables)
    declared = {
        "status": "IncidentStatus",
        "assignedTo": "String",
        "classification": "Classification",
        "determination": "Determination",
        "comment": "String",
        "key": "String",
    }
    params = "".join(f", ${name}: {declared[name]}" for name in variables)
    given = given.replace("key: $key", "idempotencyKey: $key")
    query = UPDATE.split("updateIncident(")[1].split(")", 1)[1]
    document = f"mutation($id: ID!{params}) {{ updateIncident(id: $id{', ' + given if given else ''}){query}"
    return (await api(document, id=inc(incident), **variables))["updateIncident"]


async def one_incident(ingest, scope: str = "default") -> int:
    alerts = await ingest(alert_in("a1", scope=scope), alert_in("a2", scope=scope, entities=[("device", "host-a1")]))
    return alerts[0].incident_id


async def test_taking_an_incident_sets_in_progress_and_assigns_the_viewer_with_typed_entries(admin, ingest):
    n = await one_incident(ingest)

    result = await update(admin, n, status="IN_PROGRESS", assignedTo="me", comment="on it")

    assert result["errors"] == []
    assert result["incident"] == {
        "id": inc(n),
        "status": "IN_PROGRESS",
        "assignedTo": "admin",
        "classification": "UNKNOWN",
        "determination": "UNKNOWN",
        "viewerCanUpdate": True,
    }
    status, assigned = result["logEntries"]
    assert (status["kind"], status["oldStatus"], status["newStatus"]) == ("STATUS_CHANGED", "ACTIVE", "IN_PROGRESS")
    assert status["message"] == "Status changed from Active to In progress by admin."
    assert (assigned["kind"], assigned["oldAssignee"], assigned["newAssignee"]) == ("ASSIGNED", None, "admin")
    assert assigned["message"] == "Assigned to admin by admin."
    assert {e["actor"] for e in result["logEntries"]} == {"admin"}
    assert {e["comment"] for e in result["logEntries"]} == {"on it"}
    assert status["oldClassification"] is None and assigned["oldStatus"] is None
    # and the incident's log holds them, newest first
    log = (await admin(LOG, id=inc(n)))["incident"]["activityLog"]
    assert [e["node"]["kind"] for e in log["edges"][:2]] == ["ASSIGNED", "STATUS_CHANGED"]


async def test_resolving_needs_a_classification_and_a_refusal_changes_nothing(admin, ingest):
    n = await one_incident(ingest)
    before = await admin(LOG, id=inc(n))

    refused = await update(admin, n, status="RESOLVED", assignedTo="me")

    assert refused["incident"] is None and refused["logEntries"] == []
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("CLASSIFICATION_REQUIRED", "classification")]
    assert await admin(LOG, id=inc(n)) == before

    resolved = await update(
        admin, n, status="RESOLVED", classification="TRUE_POSITIVE", determination="PHISHING", comment="done"
    )
    assert resolved["errors"] == []
    assert resolved["incident"]["status"] == "RESOLVED"
    assert resolved["incident"]["classification"] == "TRUE_POSITIVE"
    assert resolved["incident"]["determination"] == "PHISHING"
    classified = resolved["logEntries"][1]
    assert classified["kind"] == "CLASSIFIED"
    assert (classified["oldClassification"], classified["newClassification"]) == ("UNKNOWN", "TRUE_POSITIVE")
    assert (classified["oldDetermination"], classified["newDetermination"]) == ("UNKNOWN", "PHISHING")
    assert classified["message"] == "Classified as True positive, phishing by admin."


async def test_a_determination_must_go_with_the_classification(admin, ingest):
    n = await one_incident(ingest)

    refused = await update(admin, n, classification="FALSE_POSITIVE", determination="MALWARE")

    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INVALID_INPUT", "determination")]


async def test_setting_a_value_to_what_it_is_writes_nothing_so_a_retry_is_harmless(admin, ingest):
    n = await one_incident(ingest)
    await update(admin, n, status="IN_PROGRESS")

    again = await update(admin, n, status="IN_PROGRESS")

    assert again["errors"] == [] and again["logEntries"] == []
    assert again["incident"]["status"] == "IN_PROGRESS"


async def test_unassigning_and_assigning_another_user(admin, make_user, ingest):
    await make_user("bob", "*=read")
    await make_user("carol", "*=write", queue=False)
    n = await one_incident(ingest)

    assigned = await update(admin, n, assignedTo="bob")
    assert assigned["incident"]["assignedTo"] == "bob"
    unassigned = await update(admin, n, assignedTo=None)
    assert unassigned["incident"]["assignedTo"] is None
    assert unassigned["logEntries"][0]["message"] == "Unassigned from bob by admin."
    # a user who may not browse the queue cannot work on it, nor can one who does not exist
    for name in ("carol", "nobody"):
        refused = await update(admin, n, assignedTo=name)
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [("ASSIGNEE_NOT_FOUND", "assignedTo")]


async def test_redirected_is_not_a_status_to_set(admin, ingest):
    n = await one_incident(ingest)

    refused = await update(admin, n, status="REDIRECTED")

    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INVALID_INPUT", "status")]


async def test_changing_needs_write_on_one_of_its_alerts_and_the_queue_permission(make_user, ingest):
    mixed = await ingest(
        alert_in("r1", scope="red"), alert_in("b1", scope="blue", entities=[("device", "host-r1")]), across_scopes=True
    )
    n = mixed[0].incident_id
    red_writer = await make_user("ana", "red=write", "blue=read")
    reader = await make_user("ben", "red=read", "blue=read")
    blue_only_writer_without_queue = await make_user("cy", "blue=write", queue=False)
    outsider = await make_user("dee", "green=write")

    assert (await update(red_writer, n, status="IN_PROGRESS"))["errors"] == []
    refused = await update(reader, n, status="ACTIVE")
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("FORBIDDEN", "id")]
    refused = await update(blue_only_writer_without_queue, n, status="ACTIVE")
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("FORBIDDEN", None)]
    # one who may not see it is told it is not found, as for an incident that does not exist
    for target in (n, 999):
        refused = await update(outsider, target, status="ACTIVE")
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INCIDENT_NOT_FOUND", "id")]
    assert (await reader(LOG, id=inc(n)))["incident"]["status"] == "IN_PROGRESS"


async def test_a_malformed_id_is_a_typed_error(admin):
    refused = await update(admin, 1, status="ACTIVE")
    assert refused["errors"][0]["code"] == "INCIDENT_NOT_FOUND"
    data = await admin(COMMENT, id="not-an-id", text="x")
    assert [e["code"] for e in data["addComment"]["errors"]] == ["INCIDENT_NOT_FOUND"]


async def test_add_comment_writes_a_note_once_per_idempotency_key(admin, ingest):
    n = await one_incident(ingest)

    first = (await admin(COMMENT, id=inc(n), text="  called the user  ", key="k1"))["addComment"]
    again = (await admin(COMMENT, id=inc(n), text="called the user", key="k1"))["addComment"]

    assert first["errors"] == []
    assert first["logEntry"] == {
        "kind": "COMMENTED",
        "actor": "admin",
        "comment": "called the user",
        "message": "Comment by admin.",
    }
    assert again == first
    log = (await admin(LOG, id=inc(n)))["incident"]["activityLog"]
    assert [e["node"]["kind"] for e in log["edges"]].count("COMMENTED") == 1
    blank = (await admin(COMMENT, id=inc(n), text="   "))["addComment"]
    assert [(e["code"], e["field"]) for e in blank["errors"]] == [("INVALID_INPUT", "text")]


async def test_a_triage_comment_is_hidden_from_a_viewer_who_reads_only_some_alerts(make_user, ingest):
    mixed = await ingest(
        alert_in("r1", scope="red"), alert_in("b1", scope="blue", entities=[("device", "host-r1")]), across_scopes=True
    )
    n = mixed[0].incident_id
    ana = await make_user("ana", "*=write")
    ben = await make_user("ben", "red=write")
    await ana(COMMENT, id=inc(n), text="the blue alert names the CFO")

    entry = (await ben(LOG, id=inc(n)))["incident"]["activityLog"]["edges"][0]["node"]

    assert entry == {"kind": "COMMENTED", "actor": "ana", "comment": None}


async def test_a_name_no_user_can_have_is_a_typed_error_in_a_change_and_matches_nothing_in_the_queue(admin, ingest):
    n = await one_incident(ingest)

    for name in ("nul\x00name", "x" * 300, "sp ace"):
        refused = await update(admin, n, assignedTo=name)
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [("ASSIGNEE_NOT_FOUND", "assignedTo")]
    data = await admin(
        "query($names: [String!]) { incidents(filter: {assignedTo: $names}) { totalCount } }", names=["nul\x00"]
    )
    assert data["incidents"]["totalCount"] == 0


async def test_an_incident_emptied_by_a_move_can_be_taken_and_commented_without_a_classification(admin, ingest):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    moved = await admin(
        'mutation($ids: [ID!]!, $target: LinkTarget!) { linkAlerts(alertIds: $ids, target: $target, comment: "same") '
        "{ errors { code } } }",
        ids=[alert_id(a.id)],
        target={"existingIncidentId": inc(b.incident_id)},
    )
    assert moved["linkAlerts"]["errors"] == []
    emptied = a.incident_id

    assigned = await update(admin, emptied, assignedTo="me")
    noted = await update(admin, emptied, comment="nothing left here")
    unchanged_status = await update(admin, emptied, status="RESOLVED", comment="still resolved")
    commented = (await admin(COMMENT, id=inc(emptied), text="checked"))["addComment"]

    assert assigned["errors"] == [] and assigned["incident"]["assignedTo"] == "admin"
    assert assigned["incident"]["status"] == "RESOLVED" and assigned["incident"]["classification"] == "UNKNOWN"
    assert [e["kind"] for e in noted["logEntries"]] == ["COMMENTED"]
    assert unchanged_status["errors"] == [] and [e["kind"] for e in unchanged_status["logEntries"]] == ["COMMENTED"]
    assert commented["errors"] == [] and commented["logEntry"]["kind"] == "COMMENTED"


async def test_a_resolved_incident_cannot_be_classified_back_to_unknown(admin, ingest):
    n = await one_incident(ingest)
    await update(admin, n, status="RESOLVED", classification="FALSE_POSITIVE")

    refused = await update(admin, n, classification="UNKNOWN")
    reopened = await update(admin, n, status="ACTIVE", classification="UNKNOWN")

    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("CLASSIFICATION_REQUIRED", "classification")]
    assert reopened["errors"] == []
    assert (reopened["incident"]["status"], reopened["incident"]["classification"]) == ("ACTIVE", "UNKNOWN")


async def test_one_who_may_not_see_an_incident_is_refused_without_waiting_on_its_lock(make_user, ingest, pool):
    n = await one_incident(ingest, scope="red")
    outsider = await make_user("dee", "green=write")
    blocker = await pool.acquire()
    tx = blocker.transaction()
    await tx.start()
    try:
        await blocker.execute("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", n)

        refused = await asyncio.wait_for(update(outsider, n, assignedTo="me"), 5)
        commented = await asyncio.wait_for(outsider(COMMENT, id=inc(n), text="hello"), 5)
    finally:
        await tx.rollback()
        await pool.release(blocker)

    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INCIDENT_NOT_FOUND", "id")]
    assert [(e["code"], e["field"]) for e in commented["addComment"]["errors"]] == [
        ("INCIDENT_NOT_FOUND", "incidentId")
    ]


async def test_a_redirected_incident_says_it_cannot_be_updated_and_refuses_a_change(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    await redirect_by_hand(pool, a.incident_id, b.incident_id)

    seen = await admin("query($id: ID!) { incident(id: $id) { status viewerCanUpdate } }", id=inc(a.incident_id))
    refused = await update(admin, a.incident_id, assignedTo="me")

    assert seen["incident"] == {"status": "REDIRECTED", "viewerCanUpdate": False}
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("ALREADY_REDIRECTED", "id")]


async def test_a_replayed_comment_refused_as_not_found_names_the_same_argument_as_the_first_answer(
    make_user, ingest, pool
):
    n = await one_incident(ingest, scope="red")
    ana = await make_user("ana", "red=write")
    first = (await ana(COMMENT, id=inc(n), text="called the user", key="k1"))["addComment"]
    assert first["errors"] == []
    # given the incident's alerts are now in a scope ana may not read
    await pool.execute("UPDATE incidents SET alert_scopes = '{blue}' WHERE id = $1", n)

    fresh = (await ana(COMMENT, id=inc(n), text="called the user"))["addComment"]
    replayed = (await ana(COMMENT, id=inc(n), text="called the user", key="k1"))["addComment"]

    assert [(e["code"], e["field"]) for e in fresh["errors"]] == [("INCIDENT_NOT_FOUND", "incidentId")]
    assert [(e["code"], e["field"]) for e in replayed["errors"]] == [("INCIDENT_NOT_FOUND", "incidentId")]
