"""Global object identification: node(id:), nodes(ids:), the Node interface, and incident(number:)
and alert(number:). Every test runs on both execution paths (the `client` fixture's lean_path)."""

from __future__ import annotations

import pytest

from tests.conftest import alert_id, alert_in, inc, log_id, on_both_paths
from tests.test_link_alerts import LINK

NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Incident { number name status alertCount }
    ... on Alert { number title scope incident { id } }
    ... on ActivityLogEntry { kind message incident { id } alert { id } }
  }
}
"""
NODES = NODE.replace("query($id: ID!)", "query($ids: [ID!]!)").replace("node(id: $id)", "nodes(ids: $ids)")

# The same fields, through the fields that reach each kind.
INCIDENT = "query($id: ID!) { incident(id: $id) { __typename id number name status alertCount } }"
ALERT = "query($id: ID!) { alert(id: $id) { __typename id number title scope incident { id } } }"
LOG = """
query($id: ID!) { incident(id: $id) { activityLog { edges { node {
  __typename id kind message incident { id } alert { id } } } } } }
"""


def codes(errors: list[dict]) -> list[str]:
    return [e["extensions"]["code"] for e in errors]


async def two_scopes(ingest):
    """Alert 1 (default) in incident 1, alert 2 (hr) in incident 2: log entries 1 and 2 say
    each incident was created."""
    d, h = await ingest(
        alert_in("d1", "Beacon on WS-1", entities=[("device", "ws-1")]),
        alert_in("h1", "Payroll export", scope="hr", minutes=1, entities=[("user", "j.doe")]),
    )
    assert (d.id, d.incident_id, h.id, h.incident_id) == (1, 1, 2, 2)
    return d, h


async def log_of(api, number: int) -> list[dict]:
    return [e["node"] for e in (await api(LOG, id=inc(number)))["incident"]["activityLog"]["edges"]]


async def test_node_answers_each_kind_as_the_fields_that_reach_it(admin, ingest):
    await two_scopes(ingest)
    incident = (await admin(INCIDENT, id=inc(1)))["incident"]
    alert = (await admin(ALERT, id=alert_id(1)))["alert"]
    [entry] = await log_of(admin, 1)

    assert incident == {
        "__typename": "Incident",
        "id": inc(1),
        "number": 1,
        "name": "Beacon on WS-1",
        "status": "ACTIVE",
        "alertCount": 1,
    }
    assert alert == {
        "__typename": "Alert",
        "id": alert_id(1),
        "number": 1,
        "title": "Beacon on WS-1",
        "scope": "default",
        "incident": {"id": inc(1)},
    }
    assert entry == {
        "__typename": "ActivityLogEntry",
        "id": log_id(1),
        "kind": "INCIDENT_CREATED",
        "message": 'Incident created for alert #1 "Beacon on WS-1".',
        "incident": {"id": inc(1)},
        "alert": {"id": alert_id(1)},
    }
    assert await admin(NODE, id=inc(1)) == {"node": incident}
    assert await admin(NODE, id=alert_id(1)) == {"node": alert}
    assert await admin(NODE, id=log_id(1)) == {"node": entry}
    # Surrounding spaces are ignored, as in every argument that takes ids.
    assert await admin(NODE, id=f" {inc(1)}\n") == {"node": incident}


async def test_ids_are_unique_across_types(admin, ingest):
    """Incident 1, alert 1 and log entry 1 share a number, not an id."""
    await two_scopes(ingest)
    found = (await admin(NODES, ids=[inc(1), alert_id(1), log_id(1)]))["nodes"]
    assert [(n["__typename"], n["id"]) for n in found] == [
        ("Incident", inc(1)),
        ("Alert", alert_id(1)),
        ("ActivityLogEntry", log_id(1)),
    ]
    assert len({n["id"] for n in found}) == 3
    assert (await admin(NODE, id=inc(2)))["node"]["name"] == "Payroll export"
    assert (await admin(NODE, id=alert_id(2)))["node"]["title"] == "Payroll export"


async def test_nodes_answers_in_order_with_null_for_unknown_ids(admin, ingest):
    await two_scopes(ingest)
    ids = [alert_id(2), inc(999), inc(1), log_id(2), alert_id(999), log_id(999), inc(1), alert_id(1)]
    found = (await admin(NODES, ids=ids))["nodes"]
    assert [n and n["id"] for n in found] == [
        alert_id(2),
        None,
        inc(1),
        log_id(2),
        None,
        None,
        inc(1),
        alert_id(1),
    ]
    each = [(await admin(NODE, id=i))["node"] for i in ids]
    assert found == each
    assert await admin(NODES, ids=[]) == {"nodes": []}


async def test_an_alert_of_a_scope_the_viewer_cannot_read_is_null(make_user, ingest):
    dana = await make_user("dana", "default=read")
    await two_scopes(ingest)
    assert await dana(NODE, id=alert_id(2)) == {"node": None}
    assert await dana(NODE, id=alert_id(2)) == await dana(NODE, id=alert_id(999))  # as an unknown one
    # Nor its incident, nor that incident's log, which only its alert makes visible.
    assert await dana(NODE, id=inc(2)) == {"node": None}
    assert await dana(NODE, id=log_id(2)) == {"node": None}
    found = (await dana(NODES, ids=[alert_id(2), alert_id(1), inc(2), inc(1), log_id(2), log_id(1)]))["nodes"]
    assert [n and n["id"] for n in found] == [None, alert_id(1), None, inc(1), None, log_id(1)]
    # What dana may see of incident 1 is what incident(id:) shows her.
    assert found[3] == (await dana(INCIDENT, id=inc(1)))["incident"]
    assert await dana(INCIDENT, id=inc(2)) == {"incident": None}
    assert await dana(ALERT, id=alert_id(2)) == {"alert": None}


async def test_a_log_entry_about_an_unreadable_alert_reads_as_it_does_in_the_log(make_user, admin, ingest):
    """An hr alert moved into dana's incident: the entries about it are in her log, without it."""
    dana = await make_user("dana", "default=read")
    await two_scopes(ingest)
    moved = (await admin(LINK, ids=[alert_id(2)], target={"existingIncidentId": inc(1)}, comment="c"))["linkAlerts"]
    assert moved["errors"] == []
    logged = await log_of(dana, 1)
    assert [e["kind"] for e in logged] == ["ALERT_LINKED", "INCIDENT_CREATED"]
    assert logged[0]["alert"] is None
    assert [(await dana(NODE, id=e["id"]))["node"] for e in logged] == logged
    # The entries of incident 2 (emptied, resolved) are in a log dana may not open.
    assert await dana(NODE, id=inc(2)) == {"node": None}
    hidden = [e["id"] for e in await log_of(admin, 2)]
    assert len(hidden) == 3
    assert (await dana(NODES, ids=hidden))["nodes"] == [None, None, None]


async def test_without_the_queue_permission_alerts_are_found_but_incidents_and_log_entries_are_forbidden(
    make_user, ingest
):
    """node(id:) is no way around incident(id:): opening incidents by id is browsing the queue."""
    outsider = await make_user("outsider", "*=read", queue=False)
    await two_scopes(ingest)
    alert = (await outsider(ALERT, id=alert_id(1)))["alert"]
    assert await outsider(NODE, id=alert_id(1)) == {"node": alert}
    assert await outsider(NODES, ids=[alert_id(1), alert_id(999)]) == {"nodes": [alert, None]}
    assert codes(await outsider.errors(INCIDENT, id=inc(1))) == ["FORBIDDEN"]
    for given in (inc(1), log_id(1), inc(999), log_id(999)):
        body = (await outsider.post(NODE, {"id": given})).json()
        assert codes(body["errors"]) == ["FORBIDDEN"], given
        assert body["errors"][0]["path"] == ["node"]
        assert body["data"] == {"node": None}
    body = (await outsider.post(NODES, {"ids": [alert_id(1), inc(1)]})).json()
    assert codes(body["errors"]) == ["FORBIDDEN"]
    assert body["errors"][0]["path"] == ["nodes"]
    assert body["data"] is None  # nodes is non-null: the error nulls the whole answer


async def test_nodes_takes_at_most_a_page_of_ids(admin, ingest, settings):
    await two_scopes(ingest)
    most = settings.max_page_size
    found = (await admin("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", ids=[inc(1)] * most))["nodes"]
    assert found == [{"id": inc(1)}] * most
    errors = await admin.errors("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", ids=[inc(1)] * (most + 1))
    assert codes(errors) == ["BAD_USER_INPUT"]
    assert errors[0]["extensions"]["field"] == "ids"
    assert errors[0]["message"] == f"At most {most} ids at once; got {most + 1}."


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1",
        "#1",
        "inc_",
        "inc_01",
        "inc_0",
        "INC_1",
        "Inc_1",
        "incident_1",
        "node_1",
        "inc_١",
        "log-1",
        "inc_" + "1" * 19,
    ],
)
async def test_a_malformed_id_is_bad_user_input(admin, ingest, bad):
    await two_scopes(ingest)
    message = f"must be an id this API gave out, such as inc_1042 or alert_57, got {bad!r}"
    for query, variables, field in [
        (NODE, {"id": bad}, "id"),
        (NODES, {"ids": [inc(1), bad]}, "ids"),
    ]:
        errors = await admin.errors(query, **variables)
        assert codes(errors) == ["BAD_USER_INPUT"], bad
        assert errors[0]["extensions"]["field"] == field
        assert errors[0]["message"] == f"{field} {message}"


async def test_incident_and_alert_by_number(admin, ingest):
    await two_scopes(ingest)
    by_id = (await admin(INCIDENT, id=inc(2)))["incident"]
    by_number = INCIDENT.replace("$id: ID!", "$n: Int!").replace("incident(id: $id)", "incident(number: $n)")
    assert await admin(by_number, n=2) == {"incident": by_id}
    assert await admin(by_number, n=999) == {"incident": None}
    alert = (await admin(ALERT, id=alert_id(2)))["alert"]
    alert_by_number = ALERT.replace("$id: ID!", "$n: Int!").replace("alert(id: $id)", "alert(number: $n)")
    assert await admin(alert_by_number, n=2) == {"alert": alert}
    assert await admin(alert_by_number, n=999) == {"alert": None}
    # Both in one document, each by its own kind's number.
    assert await admin("{ alert(number: 1) { id } incident(number: 1) { id } }") == {
        "alert": {"id": alert_id(1)},
        "incident": {"id": inc(1)},
    }


async def test_by_number_follows_the_rules_of_by_id(make_user, ingest):
    await two_scopes(ingest)
    dana = await make_user("dana", "default=read")
    outsider = await make_user("outsider", "*=read", queue=False)
    assert await dana("{ alert(number: 2) { id } }") == {"alert": None}
    assert await dana("{ incident(number: 2) { id } }") == {"incident": None}
    assert await dana("{ incident(number: 1) { id } }") == {"incident": {"id": inc(1)}}
    assert await outsider("{ alert(number: 2) { id } }") == {"alert": {"id": alert_id(2)}}
    assert codes(await outsider.errors("{ incident(number: 1) { id } }")) == ["FORBIDDEN"]


@pytest.mark.parametrize("field", ["incident", "alert"])
@pytest.mark.parametrize(
    "arguments",
    ["", "(id: null)", "(number: null)", "(id: null, number: null)", '(id: "{id}", number: 1)'],
)
async def test_exactly_one_of_id_and_number(admin, ingest, field, arguments):
    await two_scopes(ingest)
    make = inc if field == "incident" else alert_id
    document = f"{{ {field}{arguments.replace('{id}', make(1))} {{ id }} }}"
    errors = await admin.errors(document)
    assert codes(errors) == ["BAD_USER_INPUT"], errors
    assert errors[0]["extensions"]["field"] == "id"
    assert errors[0]["message"] == "Give exactly one of id or number."
    variables = "query($id: ID, $n: Int) { " + field + "(id: $id, number: $n) { id } }"
    for given in ({}, {"id": None, "n": None}, {"id": make(1), "n": 1}):
        assert codes(await admin.errors(variables, **given)) == ["BAD_USER_INPUT"], given
    assert await admin(variables, id=make(1)) == {field: {"id": make(1)}}
    assert await admin(variables, n=1) == {field: {"id": make(1)}}


async def test_node_takes_fragments_on_the_interface(admin, ingest):
    await two_scopes(ingest)
    query = """
    query($ids: [ID!]!) { nodes(ids: $ids) { ... on Node { id } ...Named __typename } }
    fragment Named on Node { ... on Incident { name } ... on Alert { title } }
    """
    found = (await admin(query, ids=[inc(1), alert_id(1), log_id(1)]))["nodes"]
    assert found == [
        {"id": inc(1), "name": "Beacon on WS-1", "__typename": "Incident"},
        {"id": alert_id(1), "title": "Beacon on WS-1", "__typename": "Alert"},
        {"id": log_id(1), "__typename": "ActivityLogEntry"},
    ]


# --- the lean path: node and nodes go to graphql-core; fragments on Node it plans -------------------

NODE_FRAGMENTS = """
query($id: ID!) {
  incident(id: $id) {
    ... on Node { id }
    ...Ids
    number name
    alerts(first: 5) { edges { node { ... on Node { id } ...Ids number title } } }
    activityLog(first: 5) { edges { node { ... on Node { id } kind alert { ...Ids } } } }
  }
}
fragment Ids on Node { id }
"""


@pytest.mark.parametrize("lean_path", [True], ids=["lean-path"])
async def test_the_lean_path_answers_fragments_on_node_and_leaves_node_and_nodes_to_graphql_core(
    make_user, admin, ingest, lean_answers
):
    await two_scopes(ingest)
    await admin(LINK, ids=[alert_id(2)], target={"existingIncidentId": inc(1)}, comment="c")
    dana = await make_user("dana", "default=read")
    for viewer in (admin, dana):
        lean_answers.clear()
        lean, normal = await on_both_paths(viewer, lean_answers, NODE_FRAGMENTS, {"id": inc(1)})
        assert lean_answers[0] is not None  # the lean path answered
        assert lean == normal
        for query, variables in [
            (NODE, {"id": inc(1)}),
            (NODES, {"ids": [inc(1), alert_id(2), log_id(1)]}),
            ('{ node(id: "alert_1") { id } }', {}),
        ]:
            lean_answers.clear()
            lean, normal = await on_both_paths(viewer, lean_answers, query, variables)
            assert lean_answers[0] is None, query  # it stepped aside
            assert lean == normal


async def test_fragments_on_node_inside_an_incident_answer_alike_on_both_paths(admin, ingest):
    await two_scopes(ingest)
    await admin(LINK, ids=[alert_id(2)], target={"existingIncidentId": inc(1)}, comment="c")
    incident = (await admin(NODE_FRAGMENTS, id=inc(1)))["incident"]
    assert incident == {
        "id": inc(1),
        "number": 1,
        "name": "Beacon on WS-1",
        "alerts": {
            "edges": [
                {"node": {"id": alert_id(2), "number": 2, "title": "Payroll export"}},
                {"node": {"id": alert_id(1), "number": 1, "title": "Beacon on WS-1"}},
            ]
        },
        "activityLog": {
            "edges": [
                # The move wrote log entries 3 to 5: unlinked from 2, linked to 1, 2 resolved.
                {"node": {"id": log_id(4), "kind": "ALERT_LINKED", "alert": {"id": alert_id(2)}}},
                {"node": {"id": log_id(1), "kind": "INCIDENT_CREATED", "alert": {"id": alert_id(1)}}},
            ]
        },
    }
