"""The lean path (app/api/lean/) answers exactly as graphql-core does, and runs a mutation once."""

from __future__ import annotations

import pytest

from app.api import fields
from tests.conftest import TO_GRAPHQL_CORE, alert_id, alert_in, inc, on_both_paths
from tests.test_link_alerts import LINK
from tests.test_statements import DETAIL

TYPEAHEAD = """
query Typeahead($q: String!) { incidents(filter: {search: $q}, first: 10) { edges { node {
  id name status severity lastActivityAt alertCount
  alerts(first: 5) { edges { node { id title severity detectedAt } } } } } } }
"""
SHAPES = """
query($first: Int, $after: String, $status: [IncidentStatus!]) {
  queue: incidents(first: $first, after: $after, filter: {status: $status}) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { __typename ...Card redirectIncident { id }
      log: activityLog(first: 2) { totalCount edges { node { kind message alert { ...Line } } } } } }
  }
  scoped: alerts(filter: {severity: [HIGH, MEDIUM], search: "on"}, first: 3) {
    totalCount edges { node { ...Line entities { kind value } viewerCanLink } }
  }
}
fragment Card on Incident { id name alertCount createdAt ... on Incident { severity status } }
fragment Line on Alert { id externalId title category scope status incident { id alertCount } }
"""
ONE = 'query($id: ID!) { alert(id: $id) { id title incident { id } } missing: incident(id: "inc_999999") { id } }'


# These tests look at the lean path itself: the app under test has it on.
pytestmark = pytest.mark.parametrize("lean_path", [True], ids=["lean-path"])


async def test_lean_and_normal_paths_give_the_same_bytes(make_user, admin, ingest, lean_answers):
    # Given incidents with alerts in two scopes, moves that wrote log entries, a redirect-free queue
    a, b, c, secret = await ingest(
        alert_in("a", "Lateral movement on WS-1", severity="high", entities=[("device", "WS-1")]),
        alert_in("b", "Beacon on WS-1", minutes=5, entities=[("device", "WS-1"), ("user", "bob")]),
        alert_in("c", "Phishing on WS-2", severity="low", minutes=9),
        alert_in("s", "Payroll export on WS-1", scope="hr", minutes=12, entities=[("device", "WS-1")]),
    )
    await admin(LINK, ids=[alert_id(b.id)], target={"existingIncidentId": inc(c.incident_id)}, comment="same actor")
    analyst = await make_user("analyst", "default=write")

    cases = [
        (TYPEAHEAD, {"q": "on"}),
        (TYPEAHEAD, {"q": "ws-1 lateral"}),
        (TYPEAHEAD, {"q": str(c.incident_id)}),
        (TYPEAHEAD, {"q": inc(c.incident_id)}),
        (DETAIL, {"id": inc(a.incident_id)}),
        (DETAIL, {"id": inc(c.incident_id)}),
        (SHAPES, {"first": 2}),
        (SHAPES, {"first": 1, "status": ["ACTIVE", "RESOLVED"]}),
        (ONE, {"id": alert_id(b.id)}),
        (ONE, {"id": alert_id(secret.id)}),
    ]
    for viewer in (admin, analyst):
        for query, variables in cases:
            lean_answers.clear()
            # When each document is asked through the lean path and through the normal one
            lean, normal = await on_both_paths(viewer, lean_answers, query, variables)
            # Then the lean path answered, with the normal path's very bytes
            assert lean_answers[0] is not None, (query, variables)
            assert lean == normal, (query, variables)


async def test_apollo_clients_named_requests_take_the_lean_path_and_unknown_extensions_do_not(
    admin, ingest, lean_answers
):
    """Apollo Client 4 sends extensions.clientLibrary with every request: it changes nothing of the
    answer, so the lean path takes the request; an extension it does not know goes the normal way."""
    await ingest(alert_in("a"))
    query = "{ incidents(first: 1) { edges { node { id name } } } }"
    headers = {"Authorization": f"Bearer {admin.token}"}
    answers = []
    for extensions in ({"clientLibrary": {"name": "@apollo/client", "version": "4.0.0"}}, {}, {"tracing": True}):
        body = {"query": query, "extensions": extensions}
        response = await admin.client.post("/graphql", json=body, headers=headers)
        answers.append(response.json())
    assert answers[0] == answers[1] == answers[2] and "errors" not in answers[0]
    assert [answer is not None for answer in lean_answers] == [True, True, False]


async def test_what_the_lean_path_does_not_know_goes_the_normal_way(admin, ingest, lean_answers):
    await ingest(alert_in("a"))
    for query in (
        "{ viewer { name } }",
        "{ incidents(first: 1) { edges { node { id @include(if: true) } } } }",
        "{ __schema { queryType { name } } }",
        "{ incidents(first: 0) { edges { node { id } } } }",  # an error: the normal path reports it
        "{ nope }",
    ):
        lean_answers.clear()
        await admin.post(query)
        assert lean_answers == [None], query
    errors = await admin.errors("{ incidents(first: 0) { edges { node { id } } } }")
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


INGEST = """
mutation($alerts: [AlertInput!]!) { ingestAlerts(alerts: $alerts) {
  alerts { id externalId title severity status category scope detectedAt incident { id name alertCount }
           entities { kind value } viewerCanLink }
  incidents { id name status severity alertCount lastActivityAt }
  logEntries { id kind actor message comment incident { id } alert { id title } otherIncident { id } }
  errors { code message field externalIds }
} }
"""


def _detections(prefix: str) -> list[dict]:
    return [
        {
            "externalId": f"{prefix}-1",
            "title": "Phish on WS-1",
            "severity": "LOW",
            "category": "InitialAccess",
            "detectedAt": "2026-11-20T12:00:00Z",
            "entities": [{"kind": "DEVICE", "value": "WS-1"}],
        },
        {
            "externalId": f"{prefix}-2",
            "title": "Beacon from ws-1",
            "severity": "HIGH",
            "category": "CommandAndControl",
            "scope": "hr",
            "detectedAt": "2026-11-20T12:05:00",
            "entities": [{"kind": "DEVICE", "value": " ws-1 "}],
        },
        {"externalId": f"{prefix}-1", "title": "a repeat", "severity": "LOW", "category": "x", "entities": []},
        {
            "externalId": f"{prefix}-3",
            "title": "Unrelated",
            "severity": "MEDIUM",
            "category": "Discovery",
            "detectedAt": "2026-11-20T12:06:00Z",
            "entities": [],
        },
    ]


async def _on_both_paths(api, lean_answers, prepare, query: str, requests: list[dict]) -> list[list[bytes]]:
    """The responses to the same mutations, on the same data prepared anew: through the lean
    path (which must take every one), then through the normal one."""
    outcomes = []
    for extensions in (None, TO_GRAPHQL_CORE):
        await prepare()
        lean_answers.clear()
        bodies = []
        for variables in requests:
            body = {"query": query, "variables": variables}
            if extensions is not None:
                body["extensions"] = extensions
            response = await api.client.post("/graphql", json=body, headers={"Authorization": f"Bearer {api.token}"})
            assert response.status_code == 200
            bodies.append(response.content)
        outcomes.append(bodies)
        if extensions is None:
            assert all(answer is not None for answer in lean_answers)
        else:
            assert lean_answers == [None] * len(requests)  # graphql-core answered each
    return outcomes


async def test_ingestion_answers_as_the_normal_path_does(make_user, pool, lean_answers):
    sensor = await make_user("sensor", "default=read", ingest=True)
    bad = [{**_detections("x")[0], "title": " "}]

    async def empty() -> None:
        await pool.execute(
            "TRUNCATE activity_log, move_items, move_incidents, moves, alert_entities, incident_evidence, incident_evidence_text, alerts, incidents RESTART IDENTITY CASCADE"
        )

    batches = [{"alerts": a} for a in (_detections("a"), _detections("a"), bad)]
    outcomes = await _on_both_paths(sensor, lean_answers, empty, INGEST, batches)
    assert outcomes[0] == outcomes[1]
    assert b'"INVALID_INPUT"' in outcomes[0][2]


LINK_WITH_KEY = LINK.replace("$comment: String!)", "$comment: String!, $key: String)").replace(
    "comment: $comment)", "comment: $comment, idempotencyKey: $key)"
)


async def test_moves_answer_as_the_normal_path_does(make_user, pool, ingest, lean_answers):
    """Each path runs the same moves on the same data, rebuilt in between: the same bytes."""
    analyst = await make_user("analyst", "default=write", "hr=read")
    moves = [
        {"ids": [alert_id(2), alert_id(3)], "target": {"existingIncidentId": inc(1)}, "comment": "same host"},
        {"ids": [alert_id(1), alert_id(4)], "target": {"createNew": True}, "comment": "split", "key": "k-1"},
        {
            "ids": [alert_id(1), alert_id(4)],
            "target": {"createNew": True},
            "comment": "split",
            "key": "k-1",
        },  # a replay
        {
            "ids": [alert_id(5), alert_id(999)],
            "target": {"existingIncidentId": inc(1)},
            "comment": "hidden and unknown",
        },
        {"ids": [alert_id(2)], "target": {"existingIncidentId": inc(1)}, "comment": "already there"},
        {"ids": [alert_id(2), inc(3), "3"], "target": {"existingIncidentId": alert_id(1)}, "comment": "wrong kinds"},
    ]

    async def five_alerts() -> None:
        await pool.execute(
            "TRUNCATE activity_log, move_items, move_incidents, moves, alert_entities, incident_evidence, incident_evidence_text, alerts, incidents, idempotency_keys"
            " RESTART IDENTITY CASCADE"
        )
        for n, scope in enumerate(["default", "default", "default", "default", "hr"]):
            await ingest(
                alert_in(f"x{n}", f"Alert {n} on WS-{n}", minutes=n, scope=scope, entities=[("device", f"ws-{n}")])
            )

    outcomes = await _on_both_paths(analyst, lean_answers, five_alerts, LINK_WITH_KEY, moves)
    assert outcomes[0] == outcomes[1]
    assert b'"ALERT_NOT_FOUND"' in outcomes[0][3]
    assert b'"ALERT_NOT_FOUND"' in outcomes[0][5] and b'"INCIDENT_NOT_FOUND"' in outcomes[0][5]


async def test_a_move_the_lean_path_committed_is_not_run_again(admin, ingest, pool, lean_answers):
    """The answer's selection has an argument the move's answer would refuse (first: 0): the
    lean path steps aside before the move starts, and the normal path makes it, once."""
    await ingest(alert_in("a", "Beacon on WS-1", entities=[("device", "ws-1")]))
    split = (
        'mutation { linkAlerts(alertIds: ["alert_1"], target: {createNew: true}, comment: "split") {'
        " targetIncident { id alerts(first: 0) { totalCount } } errors { code } } }"
    )
    response = await admin.client.post(
        "/graphql", json={"query": split}, headers={"Authorization": f"Bearer {admin.token}"}
    )

    assert lean_answers == [None]  # the lean path left the answer to the normal one
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["BAD_USER_INPUT"]
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 2
    assert (
        await pool.fetchval("SELECT count(*) FROM activity_log WHERE kind = 'incident_created' AND actor = 'admin'")
        == 1
    )
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = 1") == 2


async def test_a_move_with_its_target_written_in_the_document_takes_the_lean_path(admin, ingest, lean_answers):
    await ingest(alert_in("a", entities=[("device", "ws-1")]), alert_in("b", entities=[("device", "ws-2")]))
    move = (
        "mutation($ids: [ID!]!, $to: ID!) { linkAlerts(alertIds: $ids, target: {existingIncidentId: $to},"
        ' comment: "consolidating") { targetIncident { id alertCount } errors { code message } } }'
    )
    response = await admin.client.post(
        "/graphql",
        json={"query": move, "variables": {"ids": [alert_id(2)], "to": inc(1)}},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert response.json() == {
        "data": {"linkAlerts": {"targetIncident": {"id": inc(1), "alertCount": 2}, "errors": []}},
        "extensions": response.json()["extensions"],
    }
    assert lean_answers and lean_answers[0] is not None


async def test_one_document_is_charged_by_each_requests_own_variables(admin, lean_answers):
    # The lean path keeps a document's cost by the shape of its variables: a cheap request must
    # not let the same document through later with a costly `first`, nor the other way round.
    nested = "alerts(first: $n) { edges { node { incident { alerts(first: $n) { edges { node { id } } } } } } }"
    query = (
        "query($n: Int, $q: String) { incidents(first: $n, filter: {search: $q}) { edges { node { "
        + nested
        + " } } } }"
    )
    cheap = (await admin.post(query, {"n": 2, "q": "a"})).json()
    costly = (await admin.post(query, {"n": 100, "q": "a"})).json()
    cheap_again = (await admin.post(query, {"n": 2, "q": "b"})).json()
    assert lean_answers[0] is not None and lean_answers[2] is not None  # the lean path answered both
    assert "errors" not in cheap and "errors" not in cheap_again
    assert (
        cheap["extensions"]["cost"]["requested"]
        == cheap_again["extensions"]["cost"]["requested"]
        == 1 + 2 * (3 + 2 * (3 + 1 + 2 * 2))
    )
    assert costly["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert costly["extensions"]["cost"]["requested"] == 1 + 100 * (3 + 100 * (3 + 1 + 100 * 2))


async def test_a_move_whose_answer_fails_after_commit_is_answered_by_the_lean_path_and_not_run_again(
    admin, ingest, pool, lean_answers, monkeypatch
):
    """The move commits; then reading its answer fails (the database went away): the lean path
    says so itself, the move stays made once, and nothing hands it to graphql-core."""
    await ingest(alert_in("a", "Beacon on WS-1", entities=[("device", "ws-1")]))

    def unavailable(parents, args, ctx):
        raise ConnectionResetError("the database went away")

    monkeypatch.setitem(fields.BATCHES, ("Incident", "alertCount"), unavailable)
    split = (
        'mutation { linkAlerts(alertIds: ["alert_1"], target: {createNew: true}, comment: "split") {'
        " targetIncident { id alertCount } errors { code } } }"
    )
    response = await admin.client.post(
        "/graphql", json={"query": split}, headers={"Authorization": f"Bearer {admin.token}"}
    )

    assert lean_answers[0] is not None  # answered by the lean path
    [error] = response.json()["errors"]
    assert response.json()["data"] is None
    assert error["extensions"]["code"] == "APPLIED_ANSWER_UNAVAILABLE"
    assert error["extensions"]["retryable"] is False  # the move was made: a retry would be another
    assert error["message"].startswith("linkAlerts was applied")
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 2
    assert (
        await pool.fetchval("SELECT count(*) FROM activity_log WHERE kind = 'incident_created' AND actor = 'admin'")
        == 1
    )


async def test_a_read_whose_database_is_down_is_answered_once_not_run_again(admin, ingest, lean_answers, monkeypatch):
    """A read that meets an unavailable database answers the retryable error at once: running it
    again on the normal path would double the wait (a statement timeout twice over)."""
    await ingest(alert_in("a", entities=[("device", "ws-1")]))
    calls = []

    def unavailable(parents, args, ctx):
        calls.append(1)
        raise ConnectionResetError("the database went away")

    monkeypatch.setitem(fields.BATCHES, ("Incident", "alertCount"), unavailable)
    body = (await admin.post('{ incident(id: "inc_1") { id alertCount } }')).json()
    assert lean_answers[0] is not None
    assert calls == [1]
    assert body["data"] == {"incident": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["DATABASE_UNAVAILABLE"]


async def test_documents_the_lean_path_cannot_run_go_the_normal_way_before_anything_runs(admin, lean_answers):
    # __typename at the root, and variables that are not an object: graphql-core answers both.
    typename = (await admin.post("mutation { __typename }")).json()
    assert typename["data"] == {"__typename": "Mutation"}
    response = await admin.client.post(
        "/graphql",
        json={"query": "query { __typename }", "variables": []},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert response.status_code == 400
    assert lean_answers == [None, None]
