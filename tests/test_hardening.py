"""Hostile and oversized requests, error masking, CORS, introspection and safe retries."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from graphql import GraphQLObjectType, build_client_schema, get_introspection_query, get_named_type
from strawberry.extensions.validation_cache import _get_validate_cache

from app.api.fields import PAGE_SIZES
from app.api.schema import build_schema
from app.config import Settings
from app.server import create_app
from tests.conftest import alert_id, alert_in
from tests.test_ingest import four_byte

LINK = """
mutation($ids: [ID!]!, $target: LinkTarget!, $comment: String!, $key: String) {
  linkAlerts(alertIds: $ids, target: $target, comment: $comment, idempotencyKey: $key) {
    targetIncident { id }
    logEntries { id kind }
    errors { code field message }
  }
}
"""


async def test_deep_query_is_refused_before_it_runs(admin):
    hop = "incident { alerts(first: 1) { edges { node { "
    query = '{ alert(id: "alert_1") { ' + hop * 3 + "id" + " } } } }" * 3 + " } }"
    errors = await admin.errors(query)
    assert "exceeds maximum operation depth" in errors[0]["message"]


@pytest.mark.parametrize(
    "query",
    [
        '{ incident(id: "inc_1") { ...nowhere } }',
        "{ incidents { edges { node { ...nowhere } } } }",
        "query { ...nowhere }",
    ],
)
async def test_a_spread_of_an_unknown_fragment_is_a_validation_error(admin, query):
    # The depth limit looked the fragment up before graphql-core's rule reported it: a 500.
    errors = await admin.errors(query)
    assert [(e["message"], e["extensions"]["code"]) for e in errors] == [
        ("Unknown fragment 'nowhere'.", "GRAPHQL_VALIDATION_FAILED")
    ]


async def test_too_many_aliases_are_refused(admin):
    query = "{ " + " ".join(f"a{i}: viewer {{ name }}" for i in range(31)) + " }"
    errors = await admin.errors(query)
    assert "aliases" in errors[0]["message"].lower()
    ok = "{ " + " ".join(f"a{i}: viewer {{ name }}" for i in range(30)) + " }"
    assert len(await admin(ok)) == 30


async def test_too_many_tokens_are_refused(admin):
    query = "{ viewer { " + "name " * 5001 + "} }"
    errors = await admin.errors(query)
    assert "more than 5000 tokens" in errors[0]["message"]


async def test_body_over_one_mebibyte_gets_413(admin):
    response = await admin.client.post(
        "/graphql",
        content=b'{"query": "{ viewer { name } }", "pad": "' + b"x" * (1024 * 1024) + b'"}',
        headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_a_streamed_body_over_one_mebibyte_gets_413_too(admin):
    """Without a Content-Length the limit is found while reading: still 413, never a 500."""

    async def chunks():
        yield b'{"query": "{ viewer { name } }", "pad": "'
        for _ in range(33):
            yield b"x" * 65536
        yield b'"}'

    response = await admin.client.post(
        "/graphql",
        content=chunks(),
        headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_every_response_reports_its_cost(admin):
    response = await admin.post(
        "{ incidents(first: 10) { edges { node { id alerts(first: 5) { edges { node { id } } } } } } }"
    )
    cost = response.json()["extensions"]["cost"]
    # incidents: 1 + 10 x (edges 1 + node 1 + alerts (1 + 5 x (edges 1 + node 1)))
    assert cost == {"requested": 1 + 10 * (2 + 1 + 5 * 2), "maximum": 50_000}


async def test_costly_query_is_refused_before_it_runs(admin, pool):
    query = """query($n: Int) { incidents(first: $n) { edges { node {
      alerts(first: 100) { edges { node { entities { value } incident { activityLog(first: 100) { totalCount } } } } } } } } }"""
    response = await admin.post(query, {"n": 100})
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert body["extensions"]["cost"]["requested"] > 50_000
    assert body.get("data") is None


async def test_cost_counts_fragments(admin):
    response = await admin.post(
        "query { incidents(first: 100) { ...F } } fragment F on IncidentConnection { edges { node { alerts(first: 100) { edges { node { entities { value } incident { id } } } } } } }"
    )
    # 1 + 100 x (edges 1 + node 1 + alerts (1 + 100 x (edges, node, entities, incident: 4)))
    assert response.json()["extensions"]["cost"]["requested"] == 1 + 100 * (2 + 1 + 100 * 4)


DEEP = "alerts(first: 100) { edges { node { incident { activityLog(first: 100) { edges { node { id } } } } } } }"


def _with(document: str, **parts: str) -> str:
    for name, text in parts.items():
        document = document.replace(name, text)
    return document


@pytest.mark.parametrize(
    "wrapped",
    [
        "{ incidents(first: 100) { edges { node { ... on Node { ... on Incident { DEEP } } } } } }",
        "{ incidents(first: 100) { edges { node { ...N } } } } fragment N on Node { ... on Incident { DEEP } }",
        "{ incidents(first: 100) { edges { node { ... on Incident { DEEP } } } } }",
    ],
    ids=["inline-on-node", "spread-on-node", "inline-on-incident"],
)
async def test_a_fragment_never_lowers_the_cost_of_what_it_wraps(admin, wrapped):
    plain = (await admin.post(_with("{ incidents(first: 100) { edges { node { DEEP } } } }", DEEP=DEEP))).json()
    behind = (await admin.post(_with(wrapped, DEEP=DEEP))).json()

    assert plain["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert behind["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert behind["extensions"]["cost"]["requested"] == plain["extensions"]["cost"]["requested"]


async def test_node_costs_its_costliest_type_and_nodes_each_id(admin):
    one = await admin.post(_with('{ incident(id: "inc_1") { DEEP } }', DEEP=DEEP))
    node = await admin.post(
        _with('{ node(id: "inc_1") { id ... on Alert { title } ... on Incident { DEEP } } }', DEEP=DEEP)
    )
    ids = ", ".join(f'"inc_{n}"' for n in range(1, 11))
    nodes = await admin.post(_with("{ nodes(ids: [IDS]) { ... on Incident { DEEP } } }", IDS=ids, DEEP=DEEP))

    cost = one.json()["extensions"]["cost"]["requested"]
    assert node.json()["extensions"]["cost"]["requested"] == cost
    assert nodes.json()["extensions"]["cost"]["requested"] == 1 + 10 * (cost - 1)
    assert nodes.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


def test_every_connection_has_a_page_size_for_the_cost():
    """A connection missing from fields.PAGE_SIZES would be charged the largest page (the limit
    fails closed); this says so before anyone is overcharged."""
    schema = build_schema()._schema
    connections = {
        (typ.name, name)
        for typ in schema.type_map.values()
        if isinstance(typ, GraphQLObjectType) and not typ.name.startswith("__")
        for name, field in typ.fields.items()
        if get_named_type(field.type).name.endswith("Connection")
    }
    assert connections == set(PAGE_SIZES)


async def test_validation_cache_is_hit_with_all_limits_on(admin):
    query = "{ viewer { name canIngest } }"
    await admin(query)
    cache = _get_validate_cache(128)
    hits = cache.cache_info().hits
    misses = cache.cache_info().misses
    for _ in range(3):
        await admin(query)
    assert cache.cache_info().hits == hits + 3
    assert cache.cache_info().misses == misses


async def test_unexpected_errors_are_masked_and_logged_with_a_request_id(admin, monkeypatch, caplog):
    from app.domain import incidents

    async def broken(**kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(incidents, "list_incidents", broken)
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        response = await admin.post("{ incidents { totalCount } }")
    [error] = response.json()["errors"]
    assert "hunter2" not in response.text
    request_id = error["extensions"]["requestId"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert request_id in error["message"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "hunter2" in str(logged[0].exc_info[1])


async def test_validation_errors_keep_their_message(admin):
    errors = await admin.errors("{ incidents { nope } }")
    assert "Cannot query field 'nope'" in errors[0]["message"]


async def test_cors_allows_no_origin_by_default(admin):
    response = await admin.client.options(
        "/graphql", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in response.headers


async def test_cors_allows_configured_origins(pool, settings):
    configured = Settings(**{**settings.__dict__, "cors_origins": ("https://soc.example",)})
    app = create_app(configured, pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        ok = await c.options(
            "/graphql", headers={"Origin": "https://soc.example", "Access-Control-Request-Method": "POST"}
        )
        bad = await c.options(
            "/graphql", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
    assert ok.headers["access-control-allow-origin"] == "https://soc.example"
    assert "access-control-allow-origin" not in bad.headers


async def test_introspection_is_on_by_default_and_can_be_switched_off(admin, pool, settings, make_user):
    query = "{ __schema { queryType { name } } }"
    assert (await admin(query))["__schema"]["queryType"]["name"] == "Query"
    closed = Settings(**{**settings.__dict__, "introspection": False})
    app = create_app(closed, pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        response = await c.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {admin.token}"})
    assert "introspection" in response.json()["errors"][0]["message"].lower()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"input_value_deprecation": True},
        {"one_of": True},
        {"input_value_deprecation": True, "one_of": True},
        {
            "specified_by_url": True,
            "directive_is_repeatable": True,
            "schema_description": True,
            "input_value_deprecation": True,
            "one_of": True,
        },
    ],
    ids=["defaults", "input-value-deprecation", "one-of", "both", "everything"],
)
async def test_a_client_s_full_introspection_passes_and_is_charged(admin, options):
    """GraphiQL, gql and code generators send graphql-core's standard query, with or without options."""
    body = (await admin.post(get_introspection_query(**options))).json()

    assert "errors" not in body, body["errors"]
    assert build_client_schema(body["data"]).query_type.name == "Query"
    cost = body["extensions"]["cost"]
    assert 1_000 < cost["requested"] < cost["maximum"] / 5  # (about 5,500 since issue 14 added its types)


def _full_type_fragment() -> str:
    query = get_introspection_query()
    return query[query.index("fragment FullType") :]


@pytest.mark.parametrize(
    "selections",
    [
        " ".join(f"s{i}: __schema {{ types {{ ...FullType }} }}" for i in range(30)),
        "__schema { " + " ".join(f"t{i}: types {{ ...FullType }}" for i in range(30)) + " }",
    ],
    ids=["thirty-schemas", "thirty-type-lists"],
)
async def test_aliased_introspection_is_refused_before_it_runs(admin, selections):
    """Thirty full introspections in one document once cost nothing and answered 1.4 MB in 2 s."""
    started = time.perf_counter()
    response = await admin.post("query { " + selections + " } " + _full_type_fragment())
    elapsed = time.perf_counter() - started

    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["QUERY_TOO_COSTLY"]
    assert body.get("data") is None
    cost = body["extensions"]["cost"]
    assert cost["requested"] > 2 * cost["maximum"]
    assert len(response.content) < 2_000
    assert elapsed < 1.0


async def test_introspection_costs_what_it_will_return(admin):
    """4 per introspected object: the root, its list, and each field the type holds."""
    body = (await admin.post('{ __type(name: "Viewer") { name fields { name type { name } } } }')).json()
    fields = body["data"]["__type"]["fields"]
    # __type 1 + fields (1 + each field (type: 1))
    assert body["extensions"]["cost"]["requested"] == 4 * (1 + 1 + len(fields))

    missing = (await admin.post('{ __type(name: "Nothing") { fields { name } } __typename }')).json()
    assert missing["data"]["__type"] is None
    assert missing["extensions"]["cost"]["requested"] == 4


async def test_idempotent_replay_returns_first_result_and_creates_nothing(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    variables = {
        "ids": [alert_id(a.id), alert_id(b.id)],
        "target": {"createNew": True},
        "comment": "one story",
        "key": "run-42",
    }
    first = (await admin(LINK, **variables))["linkAlerts"]
    incidents_after_first = await pool.fetchval("SELECT count(*) FROM incidents")
    entries_after_first = await pool.fetchval("SELECT count(*) FROM activity_log")

    again = (await admin(LINK, **variables))["linkAlerts"]

    assert again == first
    assert await pool.fetchval("SELECT count(*) FROM incidents") == incidents_after_first
    assert await pool.fetchval("SELECT count(*) FROM activity_log") == entries_after_first


async def test_a_key_and_a_comment_at_their_limits_in_four_byte_characters_are_stored(admin, ingest, pool):
    """A key is in the idempotency keys' primary key: 200 four-byte characters are 800 bytes of
    the 2,704 a btree entry holds. A comment is in no btree."""
    a, b = await ingest(alert_in("a"), alert_in("b"))
    key, comment = four_byte(200), four_byte(30_000, 200)
    variables = {"ids": [alert_id(a.id), alert_id(b.id)], "target": {"createNew": True}, "comment": comment, "key": key}

    first = (await admin(LINK, **variables))["linkAlerts"]

    assert first["errors"] == []
    assert (await admin(LINK, **variables))["linkAlerts"] == first
    assert await pool.fetchval("SELECT octet_length(key) FROM idempotency_keys") == 800
    comments = await pool.fetch("SELECT DISTINCT comment FROM activity_log WHERE comment IS NOT NULL")
    assert [r["comment"] for r in comments] == [comment]


@pytest.mark.parametrize(
    ("key", "comment", "field"),
    [(four_byte(201), "x", "idempotencyKey"), ("k", four_byte(30_001), "comment")],
    ids=["key", "comment"],
)
async def test_a_key_or_a_comment_past_its_limit_in_four_byte_characters_is_refused(
    admin, ingest, pool, key, comment, field
):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    variables = {"ids": [alert_id(a.id), alert_id(b.id)], "target": {"createNew": True}, "comment": comment, "key": key}
    result = (await admin(LINK, **variables))["linkAlerts"]
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID_INPUT", field)]
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 2


async def test_concurrent_replays_create_one_incident(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    variables = {"ids": [alert_id(a.id), alert_id(b.id)], "target": {"createNew": True}, "comment": "x", "key": "burst"}
    results = await asyncio.gather(*[admin(LINK, **variables) for _ in range(5)])
    targets = {r["linkAlerts"]["targetIncident"]["id"] for r in results}
    assert len(targets) == 1
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 3


async def test_same_key_with_other_input_is_invalid(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    await admin(LINK, ids=[alert_id(a.id)], target={"createNew": True}, comment="x", key="k1")
    other = (await admin(LINK, ids=[alert_id(b.id)], target={"createNew": True}, comment="x", key="k1"))["linkAlerts"]
    assert [(e["code"], e["field"]) for e in other["errors"]] == [("INVALID_INPUT", "idempotencyKey")]
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", b.id) == b.incident_id


async def test_keys_belong_to_their_user(admin, make_user, ingest):
    other = await make_user("other", "*=write")
    a, b = await ingest(alert_in("a"), alert_in("b"))
    first = (await admin(LINK, ids=[alert_id(a.id)], target={"createNew": True}, comment="x", key="shared"))[
        "linkAlerts"
    ]
    second = (await other(LINK, ids=[alert_id(b.id)], target={"createNew": True}, comment="x", key="shared"))[
        "linkAlerts"
    ]
    assert second["errors"] == []
    assert second["targetIncident"] != first["targetIncident"]


@pytest.mark.parametrize("query", ["mutation { linkAlerts }", "{", "query { incident(id: 1.5) { id } }", ""])
async def test_malformed_documents_get_errors_not_500(admin, query):
    response = await admin.post(query)
    assert response.status_code in (200, 400)
    assert response.json()["errors"]


MOVE_OR_LOOK = """
mutation Move($ids: [ID!]!) { linkAlerts(alertIds: $ids, target: {createNew: true}, comment: "c") { errors { code } } }
query Look { viewer { name } }
"""


@pytest.mark.parametrize(("accept", "status"), [("application/json", 200), ("application/graphql-response+json", 400)])
async def test_several_operations_without_an_operation_name_are_a_request_error(admin, ingest, pool, accept, status):
    """GraphQL over HTTP: a request error, with no data; the first operation (a move) must not run."""
    (a,) = await ingest(alert_in("a"))

    async def post(**request):
        headers = {"Authorization": f"Bearer {admin.token}", "Accept": accept}
        body = {"query": MOVE_OR_LOOK, "variables": {"ids": [alert_id(a.id)]}, **request}
        return await admin.client.post("/graphql", json=body, headers=headers)

    response = await post()

    assert response.status_code == status
    body = response.json()
    assert body.get("data") is None
    if status == 400:
        assert "data" not in body
    [error] = body["errors"]
    assert error["message"] == (
        "Must provide operation name if query contains multiple operations: this document holds 2 (Move, Look); "
        "say which one to run with operationName."
    )
    assert "path" not in error
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["locations"] == [{"line": 2, "column": 1}, {"line": 3, "column": 1}]
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 1
    assert await pool.fetchval("SELECT count(*) FROM activity_log WHERE actor = 'admin'") == 0
    named = await post(operationName="Look")
    assert named.status_code == 200
    assert named.json()["data"] == {"viewer": {"name": "admin"}}


async def test_an_anonymous_operation_among_others_is_refused_and_not_run(admin, ingest, pool):
    (a,) = await ingest(alert_in("a"))
    document = 'mutation($ids: [ID!]!) { linkAlerts(alertIds: $ids, target: {createNew: true}, comment: "c") { errors { code } } } query Look { viewer { name } }'
    response = await admin.post(document, {"ids": [alert_id(a.id)]})
    body = response.json()
    assert body.get("data") is None
    assert any("Must provide operation name" in e["message"] for e in body["errors"])
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 1


async def test_graphiql_page_needs_no_token(client):
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_a_get_query_needs_a_token(client):
    response = await client.get("/graphql", params={"query": "{ viewer { name } }"})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


NESTED = "incidents(first: $n) { edges { node { alerts(first: $n) { edges { node { incident { alerts(first: $n) { edges { node { id } } } } } } } } } }"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($n: Int = 100) { " + NESTED + " }", {}),  # the operation's default
        ("query($n: Int) { " + NESTED + " }", {"n": 100.0}),  # a float that coerces to 100
    ],
)
async def test_cost_counts_first_as_execution_will_see_it(admin, query, variables):
    body = (await admin.post(query, variables)).json()
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert body["extensions"]["cost"]["requested"] == 1 + 100 * (3 + 100 * (3 + 1 + 100 * 2))


async def test_null_first_costs_the_default(admin):
    body = (await admin.post("{ incidents(first: null) { edges { node { id } } } }")).json()
    assert body["extensions"]["cost"]["requested"] == 1 + 20 * 2


async def test_total_count_is_charged(admin):
    body = (await admin.post("{ incidents(first: 1) { totalCount } }")).json()
    assert body["extensions"]["cost"]["requested"] == 1 + 1 * 10


async def test_aliased_mutations_cannot_multiply_the_per_call_limits(admin):
    alerts = [
        {"externalId": f"x{i}", "title": "t", "severity": "LOW", "category": "Execution", "entities": []}
        for i in range(500)
    ]
    query = (
        "mutation($a: [AlertInput!]!) { "
        + " ".join(f"m{i}: ingestAlerts(alerts: $a) {{ errors {{ code }} }}" for i in range(20))
        + " }"
    )
    body = (await admin.post(query, {"a": alerts})).json()
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    single = (
        await admin.post("mutation($a: [AlertInput!]!) { ingestAlerts(alerts: $a) { errors { code } } }", {"a": alerts})
    ).json()
    assert single["data"]["ingestAlerts"]["errors"] == []


async def test_keys_are_kept_for_24_hours_then_forgotten(admin, ingest, pool):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    variables = {"target": {"createNew": True}, "comment": "x"}
    first = (await admin(LINK, ids=[alert_id(a.id)], key="day-old", **variables))["linkAlerts"]
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '23 hours'")
    assert (await admin(LINK, ids=[alert_id(a.id)], key="day-old", **variables))["linkAlerts"] == first

    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '26 hours'")
    reused = (await admin(LINK, ids=[alert_id(b.id)], key="day-old", **variables))["linkAlerts"]
    assert reused["errors"] == []
    assert reused["targetIncident"] != first["targetIncident"]
