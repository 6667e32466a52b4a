"""Incident and alert numbers: one parser (app/domain/ids.py) for every field, argument and move."""

from __future__ import annotations

import pytest

from app.api import ids as api_ids
from app.domain.errors import InvalidArgument
from app.domain.ids import parse_number
from tests.conftest import alert_in

LINK = """
mutation($ids: [ID!]!, $target: LinkTarget!) {
  linkAlerts(alertIds: $ids, target: $target, comment: "same attacker") {
    targetIncident { id }
    alerts { id incident { id } }
    errors { code field alertIds }
  }
}
"""


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
    assert api_ids.number(text, "id") == number


@pytest.mark.parametrize(
    "text",
    [
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
    ],
)
def test_anything_else_is_no_number(text):
    assert parse_number(text) is None
    with pytest.raises(InvalidArgument) as refused:
        api_ids.number(text, "filter.incidentId")
    assert refused.value.field == "filter.incidentId"


async def twelve_incidents(ingest):
    """Alerts 1..12 in incidents 1..12 (the tables restart their ids for every test)."""
    alerts = await ingest(*[alert_in(f"a{n}", minutes=n) for n in range(1, 13)])
    assert [(a.id, a.incident_id) for a in alerts] == [(n, n) for n in range(1, 13)]
    return alerts


def codes(errors: list[dict]) -> list[str]:
    return [e["extensions"]["code"] for e in errors]


@pytest.mark.parametrize("field", ["incident", "alert"])
async def test_non_ascii_digits_are_bad_user_input_in_a_literal_and_a_variable(admin, ingest, field):
    await twelve_incidents(ingest)
    assert await admin(f'{{ {field}(id: "12") {{ id }} }}') == {field: {"id": "12"}}
    assert await admin(f'{{ {field}(id: "#12") {{ id }} }}') == {field: {"id": "12"}}
    for bad in ("١٢", "##12"):
        errors = await admin.errors(f'{{ {field}(id: "{bad}") {{ id }} }}')
        assert codes(errors) == ["BAD_USER_INPUT"], errors
        errors = await admin.errors(f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}", id=bad)
        assert codes(errors) == ["BAD_USER_INPUT"], errors


async def test_alerts_filter_reads_incident_numbers_the_same_way(admin, ingest):
    await twelve_incidents(ingest)
    query = "query($i: ID!) { alerts(filter: {incidentId: $i}, first: 5) { edges { node { id } } } }"
    for same in ("12", "#12", " 12"):
        assert (await admin(query, i=same))["alerts"]["edges"] == [{"node": {"id": "12"}}]
    for bad in ("١٢", "##12"):
        assert codes(await admin.errors(query, i=bad)) == ["BAD_USER_INPUT"]


async def test_link_target_is_read_like_alert_ids(admin, ingest, pool):
    """Malformed ids are unknown ids, for the target as for the alerts: '##12' and '١٢' name none."""
    await twelve_incidents(ingest)
    for bad in ("##12", "١٢"):
        result = (await admin(LINK, ids=["1"], target={"existingIncidentId": bad}))["linkAlerts"]
        assert result["errors"] == [
            {"code": "INCIDENT_NOT_FOUND", "field": "target.existingIncidentId", "alertIds": []}
        ]
        result = (await admin(LINK, ids=[bad], target={"existingIncidentId": "12"}))["linkAlerts"]
        assert result["errors"] == [{"code": "ALERT_NOT_FOUND", "field": "alertIds", "alertIds": [bad]}]
    assert await pool.fetchval("SELECT count(*) FROM activity_log WHERE kind <> 'incident_created'") == 0

    # One '#' is a number on both sides, as in incident(id: "#12").
    result = (await admin(LINK, ids=["#1", " 2 "], target={"existingIncidentId": "#12"}))["linkAlerts"]
    assert result["errors"] == []
    assert result["targetIncident"] == {"id": "12"}
    assert result["alerts"] == [{"id": "1", "incident": {"id": "12"}}, {"id": "2", "incident": {"id": "12"}}]


async def test_one_alert_spelled_with_and_without_hash_moves_once(admin, ingest):
    await twelve_incidents(ingest)
    result = (await admin(LINK, ids=["3", "#3", "03"], target={"existingIncidentId": "12"}))["linkAlerts"]
    assert result["errors"] == []
    assert result["alerts"] == [{"id": "3", "incident": {"id": "12"}}]


async def test_the_typeahead_pins_only_an_ascii_incident_number(admin, ingest):
    [alert] = await ingest(alert_in("a", "Beacon on WS-1", entities=[("device", "ws-1")]))
    query = "query($q: String!) { incidents(filter: {search: $q}) { edges { node { id } } } }"
    pinned = await admin(query, q=f"#{alert.incident_id}")
    assert [e["node"]["id"] for e in pinned["incidents"]["edges"]] == [str(alert.incident_id)]
    arabic = "".join(chr(0x0660 + int(d)) for d in str(alert.incident_id))
    assert (await admin(query, q=arabic))["incidents"]["edges"] == []
