"""Ids and numbers: one parser (app/domain/ids.py) for every field, argument and move.

Typed ids ("inc_12", "alert_12", "log_12") name objects in arguments; numbers ("12", "#12") are
what people type into the typeahead."""

from __future__ import annotations

import json

import pytest

from app.api import ids as api_ids
from app.domain import search
from app.domain.errors import InvalidArgument
from app.domain.ids import ALERT, INCIDENT, KINDS, LOG_ENTRY, parse_id, parse_number, parse_typed, typed_id
from tests.conftest import alert_id, alert_in, inc, log_id

LINK = """
mutation($ids: [ID!]!, $target: LinkTarget!) {
  linkAlerts(alertIds: $ids, target: $target, comment: "same attacker") {
    targetIncident { id }
    alerts { id incident { id } }
    errors { code field alertIds }
  }
}
"""


# --- numbers, as people type them into the typeahead ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("12", 12),
        ("0", 0),
        ("007", 7),
        ("#1042", 1042),
        (" 12 ", 12),
        ("\t#12\n", 12),
        ("9" * 18, int("9" * 18)),
    ],
)
def test_numbers_people_type_are_read(text, number):
    assert parse_number(text) == number
    assert search.as_number(text) == number
    # A number is no id: arguments that take ids refuse it.
    assert parse_typed(text) is None
    with pytest.raises(InvalidArgument):
        api_ids.of_kind(text, INCIDENT, "id")


NOT_NUMBERS = [
    "",
    " ",
    "#",
    "##12",
    "#-12",
    "-12",
    "+12",
    "1.5",
    "1 2",
    "1_000",
    "12#",
    "# 12",
    "0x1f",
    "9" * 19,
    "١٢",
    "١",
    "１２",
    "12\u0663",
    "٣",
    "abc",
]


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_anything_else_is_no_number(text):
    assert parse_number(text) is None
    assert search.as_number(text) is None
    with pytest.raises(InvalidArgument) as refused:
        api_ids.of_kind(text, INCIDENT, "filter.incidentId")
    assert refused.value.field == "filter.incidentId"


@pytest.mark.parametrize(
    ("text", "number"),
    [("inc_1042", 1042), (" inc_12 ", 12), ("\tinc_7\n", 7), ("inc_" + "9" * 18, int("9" * 18))],
)
def test_the_typeahead_reads_a_pasted_incident_id_as_its_number(text, number):
    assert search.as_number(text) == number


@pytest.mark.parametrize("text", ["alert_12", "log_12", "INC_12", "inc_012", "inc_", "inc_١٢", "#inc_12"])
def test_the_typeahead_reads_no_other_id_as_a_number(text):
    assert search.as_number(text) is None


# --- typed ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "number"),
    [
        ("inc_1042", INCIDENT, 1042),
        ("alert_57", ALERT, 57),
        ("log_9", LOG_ENTRY, 9),
        ("inc_1", INCIDENT, 1),
        ("alert_10", ALERT, 10),
        ("log_100", LOG_ENTRY, 100),
        (" inc_12 ", INCIDENT, 12),
        ("\talert_12\n", ALERT, 12),
        ("inc_" + "9" * 18, INCIDENT, int("9" * 18)),
        ("alert_" + "9" * 18, ALERT, int("9" * 18)),
    ],
)
def test_typed_ids_are_read(text, kind, number):
    assert parse_typed(text) == (kind, number)
    assert parse_id(text, kind) == number
    assert typed_id(kind, number) == text.strip()
    assert api_ids.typed(text, "ids") == (kind, number)
    for other in KINDS:
        if other != kind:
            assert parse_id(text, other) is None
    if kind in (INCIDENT, ALERT):
        assert api_ids.of_kind(text, kind, "id") == number


NOT_IDS = [
    "",
    " ",
    "12",
    "#12",
    "0",
    "inc",
    "inc_",
    "_12",
    "inc12",
    "inc-12",
    "inc 12",
    "inc__12",
    "inc_12_",
    "inc_ 12",
    "inc _12",
    "INC_12",
    "Inc_12",
    "ALERT_12",
    "Log_12",
    "inc_012",
    "inc_0",
    "inc_00",
    "alert_007",
    "inc_-1",
    "inc_+1",
    "inc_#12",
    "#inc_12",
    "inc_1.5",
    "inc_1e3",
    "inc_0x1f",
    "inc_" + "1" * 19,
    "alert_" + "9" * 19,
    "inc_١٢",
    "inc_١",
    "inc_１２",
    "inc_12\u0663",
    "alert_٣",
    "ｉnc_12",
    "node_12",
    "incident_12",
    "inc_12inc_12",
    "inc_12,alert_1",
    "inc_12\x00",
]


@pytest.mark.parametrize("text", NOT_IDS)
def test_anything_else_is_no_id(text):
    assert parse_typed(text) is None
    for kind in KINDS:
        assert parse_id(text, kind) is None
    with pytest.raises(InvalidArgument) as refused:
        api_ids.typed(text, "ids")
    assert refused.value.field == "ids"
    for kind, field in ((INCIDENT, "filter.incidentId"), (ALERT, "id")):
        with pytest.raises(InvalidArgument) as refused:
            api_ids.of_kind(text, kind, field)
        assert refused.value.field == field
        assert refused.value.message.startswith(f"{field} must be {api_ids.EXAMPLES[kind]}, got ")


@pytest.mark.parametrize(("given", "kind"), [("alert_5", INCIDENT), ("log_5", INCIDENT), ("inc_5", ALERT)])
def test_an_id_of_another_kind_is_refused(given, kind):
    assert parse_typed(given) is not None
    assert parse_id(given, kind) is None
    with pytest.raises(InvalidArgument) as refused:
        api_ids.of_kind(given, kind, "id")
    assert refused.value.field == "id"
    assert refused.value.message == f"id must be {api_ids.EXAMPLES[kind]}, got {given!r}"


def test_ids_are_unique_across_kinds():
    assert len({typed_id(kind, 1) for kind in KINDS}) == len(KINDS)
    assert (inc(1), alert_id(1), log_id(1)) == ("inc_1", "alert_1", "log_1")


# --- through the API, on both execution paths (the `client` fixture's lean_path) -----------------


async def twelve_incidents(ingest):
    """Alerts 1..12 in incidents 1..12 (the tables restart their ids for every test)."""
    alerts = await ingest(*[alert_in(f"a{n}", minutes=n) for n in range(1, 13)])
    assert [(a.id, a.incident_id) for a in alerts] == [(n, n) for n in range(1, 13)]
    return alerts


def codes(errors: list[dict]) -> list[str]:
    return [e["extensions"]["code"] for e in errors]


def refused_ids(make) -> list[str]:
    """Spellings of object 12 that the argument taking ids of `make`'s kind refuses."""
    other = alert_id if make is inc else inc
    return [
        "12",
        "#12",
        "١٢",
        "##12",
        other(12),
        log_id(12),
        make(12).upper(),
        make(12).replace("_", "_0"),
        make(12).replace("12", "١٢"),
        make(12).replace("12", "１２"),
        make(12)[:-2],
        make(0),
        make(1) + "0" * 18,
        "#" + make(12),
    ]


@pytest.mark.parametrize(("field", "make", "kind"), [("incident", inc, INCIDENT), ("alert", alert_id, ALERT)])
async def test_malformed_and_wrong_kind_ids_are_bad_user_input_in_a_literal_and_a_variable(
    admin, ingest, field, make, kind
):
    await twelve_incidents(ingest)
    assert await admin(f'{{ {field}(id: "{make(12)}") {{ id number }} }}') == {field: {"id": make(12), "number": 12}}
    assert await admin(f'{{ {field}(id: " {make(12)}\\n") {{ id }} }}') == {field: {"id": make(12)}}
    query = f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}"
    assert await admin(query, id=f"\t{make(12)} ") == {field: {"id": make(12)}}
    # The largest number an id holds (18 digits) is looked up, and is no one's.
    assert await admin(query, id=make(int("9" * 18))) == {field: None}
    for bad in refused_ids(make):
        expected = {"code": "BAD_USER_INPUT", "field": "id"}
        message = f"id must be {api_ids.EXAMPLES[kind]}, got {bad!r}"
        errors = await admin.errors(f"{{ {field}(id: {json.dumps(bad)}) {{ id }} }}")
        assert [(e["extensions"], e["message"]) for e in errors] == [(expected, message)], bad
        errors = await admin.errors(query, id=bad)
        assert [(e["extensions"], e["message"]) for e in errors] == [(expected, message)], bad
    # An Int variable is coerced to the ID "12": a number, not an id.
    assert codes(await admin.errors(query, id=12)) == ["BAD_USER_INPUT"]


async def test_alerts_filter_reads_incident_ids_the_same_way(admin, ingest):
    await twelve_incidents(ingest)
    query = "query($i: ID!) { alerts(filter: {incidentId: $i}, first: 5) { edges { node { id } } } }"
    for same in (inc(12), f" {inc(12)}", f"{inc(12)}\n"):
        assert (await admin(query, i=same))["alerts"]["edges"] == [{"node": {"id": alert_id(12)}}]
    for bad in refused_ids(inc):
        errors = await admin.errors(query, i=bad)
        assert codes(errors) == ["BAD_USER_INPUT"], bad
        assert errors[0]["extensions"]["field"] == "filter.incidentId"
        assert errors[0]["message"] == f"filter.incidentId must be {api_ids.EXAMPLES[INCIDENT]}, got {bad!r}"


async def test_link_target_is_read_like_alert_ids(admin, ingest, pool):
    """Malformed ids are unknown ids, for the target as for the alerts: '##12', '١٢', a bare
    number and another kind's id name none."""
    await twelve_incidents(ingest)
    for bad in refused_ids(inc):
        result = (await admin(LINK, ids=[alert_id(1)], target={"existingIncidentId": bad}))["linkAlerts"]
        assert result["errors"] == [
            {"code": "INCIDENT_NOT_FOUND", "field": "target.existingIncidentId", "alertIds": []}
        ], bad
    for bad in refused_ids(alert_id):
        result = (await admin(LINK, ids=[bad], target={"existingIncidentId": inc(12)}))["linkAlerts"]
        assert result["errors"] == [{"code": "ALERT_NOT_FOUND", "field": "alertIds", "alertIds": [bad]}], bad
    assert await pool.fetchval("SELECT count(*) FROM activity_log WHERE kind <> 'incident_created'") == 0

    # Surrounding spaces are ignored on both sides, as in incident(id: " inc_12").
    result = (
        await admin(LINK, ids=[f" {alert_id(1)}", f"{alert_id(2)}\t"], target={"existingIncidentId": f" {inc(12)} "})
    )["linkAlerts"]
    assert result["errors"] == []
    assert result["targetIncident"] == {"id": inc(12)}
    assert result["alerts"] == [
        {"id": alert_id(1), "incident": {"id": inc(12)}},
        {"id": alert_id(2), "incident": {"id": inc(12)}},
    ]


async def test_an_incident_id_among_the_alert_ids_is_an_unknown_alert(admin, ingest, pool):
    """Incident 3 and alert 3 share a number, not an id: inc_3 in alertIds names no alert."""
    await twelve_incidents(ingest)
    result = (await admin(LINK, ids=[alert_id(1), inc(3)], target={"existingIncidentId": inc(12)}))["linkAlerts"]
    assert result["targetIncident"] is None
    assert result["errors"] == [{"code": "ALERT_NOT_FOUND", "field": "alertIds", "alertIds": [inc(3)]}]
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = 3") == 3
    assert await pool.fetchval("SELECT count(*) FROM activity_log WHERE kind <> 'incident_created'") == 0


async def test_one_alert_spelled_with_and_without_spaces_moves_once(admin, ingest):
    await twelve_incidents(ingest)
    spellings = [alert_id(3), f" {alert_id(3)}", f"\t{alert_id(3)}\n"]
    result = (await admin(LINK, ids=spellings, target={"existingIncidentId": inc(12)}))["linkAlerts"]
    assert result["errors"] == []
    assert result["alerts"] == [{"id": alert_id(3), "incident": {"id": inc(12)}}]


async def test_the_typeahead_pins_only_an_ascii_incident_number_or_id(admin, ingest):
    [alert] = await ingest(alert_in("a", "Beacon on WS-1", entities=[("device", "ws-1")]))
    query = "query($q: String!) { incidents(filter: {search: $q}) { edges { node { id } } } }"
    for pasted in (
        f"#{alert.incident_id}",
        str(alert.incident_id),
        inc(alert.incident_id),
        f" {inc(alert.incident_id)} ",
    ):
        pinned = await admin(query, q=pasted)
        assert [e["node"]["id"] for e in pinned["incidents"]["edges"]] == [inc(alert.incident_id)], pasted
    arabic = "".join(chr(0x0660 + int(d)) for d in str(alert.incident_id))
    for other in (
        arabic,
        f"inc_{arabic}",
        alert_id(alert.id),
        log_id(alert.incident_id),
        inc(alert.incident_id).upper(),
    ):
        assert (await admin(query, q=other))["incidents"]["edges"] == [], other


@pytest.mark.parametrize("table", ["incidents", "alerts"])
async def test_numbers_stop_where_graphql_int_does(pool, table):
    """number: Int! is 32-bit: the database hands out no number past it, and takes none."""
    sequence_max = await pool.fetchval(
        "SELECT seqmax FROM pg_sequence WHERE seqrelid = pg_get_serial_sequence($1, 'id')::regclass", table
    )
    assert sequence_max == 2**31 - 1
    constraint = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1", f"{table}_number_is_an_int"
    )
    assert "2147483647" in constraint
