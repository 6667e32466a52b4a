"""Who may ask, and what they learn: tokens, grants per scope, the queue permission."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.domain import users
from app.domain.models import Alert
from tests.conftest import Api, alert_id, alert_in, inc
from tests.test_link_alerts import LINK

VIEWER = "{ viewer { name canViewIncidents canIngest grants { scope access } } }"

INCIDENT = """
query($id: ID!) {
  incident(id: $id) {
    id name alertCount
    alerts { edges { node { id title } } totalCount }
    activityLog { edges { node { kind message alert { id title } } } totalCount }
  }
}
"""

QUEUE = """
query($search: String) {
  incidents(filter: {search: $search}, first: 100) { edges { node { id name alertCount } } totalCount }
}
"""

ALERTS = """
query($search: String, $incidentId: ID) {
  alerts(filter: {search: $search, incidentId: $incidentId}, first: 100) {
    edges { node { id title viewerCanLink } } totalCount
  }
}
"""

ALERT = "query($id: ID!) { alert(id: $id) { id title viewerCanLink incident { id } } }"


def codes(errors: list[dict]) -> list[str]:
    return [e["extensions"]["code"] for e in errors]


# --- authentication -------------------------------------------------------------------------


async def assert_unauthenticated(client, headers: dict) -> None:
    response = await client.post("/graphql", json={"query": VIEWER}, headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert codes(body["errors"]) == ["UNAUTHENTICATED"]
    assert "data" not in body or body["data"] is None
    assert response.headers["www-authenticate"].lower().startswith("bearer")


async def test_request_without_a_token_is_401(client):
    await assert_unauthenticated(client, {})
    response = await client.get("/graphql", params={"query": VIEWER})
    assert response.status_code == 401
    assert codes(response.json()["errors"]) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer    ",
        "Basic YWRtaW46YWRtaW4=",
        "igt_nope",
        "Bearer igt_nope",
        "Bearer not-even-our-prefix",
        "Bearer igt_" + "x" * 500,
    ],
)
async def test_request_with_a_bad_token_is_401(client, make_user, authorization):
    await make_user("analyst", "*=read")
    await assert_unauthenticated(client, {"Authorization": authorization})


async def test_revoked_token_is_401_and_a_fresh_one_works(client, make_user, pool):
    analyst = await make_user("analyst", "*=read")
    assert (await analyst(VIEWER))["viewer"]["name"] == "analyst"

    async with pool.acquire() as conn:
        assert await users.revoke_tokens(conn=conn, name="analyst") == 1

    await assert_unauthenticated(client, {"Authorization": f"Bearer {analyst.token}"})
    again = await make_user("analyst")
    assert (await again(VIEWER))["viewer"]["name"] == "analyst"


async def test_viewer_shows_permissions_and_grants(make_user):
    analyst = await make_user("analyst", "finance=read", "default=write")
    sensor = await make_user("sensor", queue=False, ingest=True)
    boss = await make_user("boss", "*=write")

    assert (await analyst(VIEWER))["viewer"] == {
        "name": "analyst",
        "canViewIncidents": True,
        "canIngest": False,
        "grants": [{"scope": "default", "access": "WRITE"}, {"scope": "finance", "access": "READ"}],
    }
    assert (await sensor(VIEWER))["viewer"] == {
        "name": "sensor",
        "canViewIncidents": False,
        "canIngest": True,
        "grants": [],
    }
    assert (await boss(VIEWER))["viewer"]["grants"] == [{"scope": "*", "access": "WRITE"}]


# --- visibility by scope --------------------------------------------------------------------


@dataclass
class Floor:
    """A SOC floor: a mixed incident, an HR-only incident and an emptied incident."""

    shared: Alert  # default-scope alert that opened the mixed incident
    payroll: Alert  # hr-scope alert correlated into the mixed incident
    secret: Alert  # hr-scope alert alone in its incident
    moved: Alert  # default-scope alert moved out of the incident it opened
    emptied_id: int
    mixed_id: int


@pytest.fixture
async def floor(admin: Api, ingest) -> Floor:
    shared, payroll, secret, moved = await ingest(
        alert_in("d1", "Suspicious sign-in on WS-1", entities=[("device", "WS-1")], severity="low"),
        alert_in(
            "h1", "Payroll export by mallory", scope="hr", minutes=5, severity="high", entities=[("device", "ws-1")]
        ),
        alert_in("h2", "Salary spreadsheet exfiltrated", scope="hr", minutes=10, entities=[("device", "HR-9")]),
        alert_in("d2", "Spare detection", minutes=1, entities=[("device", "WS-2")]),
        across_scopes=True,  # a deployment that correlates across scopes: a mixed incident
    )
    assert shared.incident_id == payroll.incident_id
    target = {"existingIncidentId": inc(shared.incident_id)}
    data = await admin(LINK, ids=[alert_id(moved.id)], target=target, comment="duplicate detection")
    assert data["linkAlerts"]["errors"] == []
    return Floor(shared, payroll, secret, moved, emptied_id=moved.incident_id, mixed_id=shared.incident_id)


async def test_search_does_not_find_unreadable_alerts(make_user, floor):
    dana = await make_user("dana", "default=read")

    assert (await dana(ALERTS, search="payroll"))["alerts"] == {"edges": [], "totalCount": 0}
    everything = (await dana(ALERTS))["alerts"]
    assert sorted(e["node"]["title"] for e in everything["edges"]) == ["Spare detection", "Suspicious sign-in on WS-1"]
    assert everything["totalCount"] == 2
    assert (await dana(ALERTS, incidentId=inc(floor.secret.incident_id)))["alerts"] == {"edges": [], "totalCount": 0}


async def test_unreadable_alert_by_id_looks_like_an_unknown_one(make_user, floor):
    dana = await make_user("dana", "default=read")
    assert await dana(ALERT, id=alert_id(floor.payroll.id)) == {"alert": None}
    assert await dana(ALERT, id=alert_id(424242)) == {"alert": None}
    assert (await dana(ALERT, id=alert_id(floor.shared.id)))["alert"]["title"] == "Suspicious sign-in on WS-1"


async def test_incident_shows_only_readable_alerts_and_counts(make_user, admin, floor):
    dana = await make_user("dana", "default=read")

    theirs = (await dana(INCIDENT, id=inc(floor.mixed_id)))["incident"]
    everything = (await admin(INCIDENT, id=inc(floor.mixed_id)))["incident"]

    assert everything["alertCount"] == 3 and everything["alerts"]["totalCount"] == 3
    assert theirs["alertCount"] == 2
    assert theirs["alerts"]["totalCount"] == 2
    assert sorted(e["node"]["id"] for e in theirs["alerts"]["edges"]) == sorted(
        [alert_id(floor.shared.id), alert_id(floor.moved.id)]
    )


async def test_paging_an_incidents_alerts_skips_unreadable_ones(make_user, floor):
    dana = await make_user("dana", "default=read")
    query = """
    query($id: ID!, $after: String) { incident(id: $id) { alerts(first: 1, after: $after) {
      edges { node { id } } pageInfo { hasNextPage endCursor } totalCount } } }
    """
    seen, after = [], None
    while True:
        page = (await dana(query, id=inc(floor.mixed_id), after=after))["incident"]["alerts"]
        assert page["totalCount"] == 2
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [alert_id(floor.moved.id), alert_id(floor.shared.id)]


async def test_queue_hides_incidents_whose_alerts_are_all_unreadable(make_user, admin, floor):
    dana = await make_user("dana", "default=read")
    nobody = await make_user("nobody")

    theirs = (await dana(QUEUE))["incidents"]
    assert sorted((e["node"]["id"], e["node"]["alertCount"]) for e in theirs["edges"]) == sorted(
        [(inc(floor.mixed_id), 2), (inc(floor.emptied_id), 0)]
    )
    assert theirs["totalCount"] == 2
    assert (await admin(QUEUE))["incidents"]["totalCount"] == 3
    # An incident emptied by moves keeps the scopes of the alerts it held (its name and log came
    # from them): dana, who could read them, still sees it; a user with no grant sees nothing.
    assert (await nobody(QUEUE))["incidents"] == {"edges": [], "totalCount": 0}

    secret = inc(floor.secret.incident_id)
    assert await dana(INCIDENT, id=secret) == {"incident": None}
    assert (await dana(QUEUE, search="salary"))["incidents"] == {"edges": [], "totalCount": 0}
    # The typeahead reads its number, or its id pasted, alike.
    for search in (inc(floor.secret.incident_id), secret):
        assert (await dana(QUEUE, search=search))["incidents"] == {"edges": [], "totalCount": 0}
        assert [e["node"]["id"] for e in (await admin(QUEUE, search=search))["incidents"]["edges"]] == [secret]


async def test_activity_log_does_not_reveal_unreadable_alerts(make_user, admin, floor):
    dana = await make_user("dana", "default=read")

    log = (await dana(INCIDENT, id=inc(floor.mixed_id)))["incident"]["activityLog"]
    about_payroll = [
        e["node"]
        for e in (await admin(INCIDENT, id=inc(floor.mixed_id)))["incident"]["activityLog"]["edges"]
        if e["node"]["alert"] and e["node"]["alert"]["id"] == alert_id(floor.payroll.id)
    ]
    assert [e["kind"] for e in about_payroll] == ["ALERT_CORRELATED"]
    assert "Payroll export by mallory" in about_payroll[0]["message"]

    entries = [e["node"] for e in log["edges"]]
    assert len(entries) == log["totalCount"]
    hidden = [e for e in entries if e["kind"] == "ALERT_CORRELATED" and e["alert"] is None]
    assert len(hidden) == 1
    assert hidden[0]["message"] == "An alert you cannot view was correlated with this incident by shared evidence."
    for entry in entries:
        assert "Payroll" not in entry["message"] and "mallory" not in entry["message"]
        assert entry["alert"] is None or entry["alert"]["id"] != alert_id(floor.payroll.id)


async def test_log_of_an_incident_opened_by_an_unreadable_alert_reads_as_a_sentence(make_user, ingest, admin):
    """The hr alert opens the incident; a default alert joins it, so dana sees the incident."""
    dana = await make_user("dana", "default=read")
    secret, visible = await ingest(
        alert_in("h1", "Payroll export by mallory", scope="hr", entities=[("user", "mallory")]),
        alert_in("d1", "Sign-in by mallory", minutes=1, entities=[("user", "MALLORY")]),
        across_scopes=True,
    )
    assert secret.incident_id == visible.incident_id

    log = (await dana(INCIDENT, id=inc(visible.incident_id)))["incident"]["activityLog"]["edges"]
    created = [e["node"] for e in log if e["node"]["kind"] == "INCIDENT_CREATED"]

    assert created == [
        {"kind": "INCIDENT_CREATED", "message": "Incident created for an alert you cannot view.", "alert": None}
    ]


async def test_unreadable_alert_in_a_move_looks_like_an_unknown_one(make_user, floor, pool):
    dana = await make_user("dana", "default=write")
    target = {"existingIncidentId": inc(floor.emptied_id)}

    hidden = (await dana(LINK, ids=[alert_id(floor.payroll.id)], target=target, comment="c"))["linkAlerts"]
    unknown = (await dana(LINK, ids=[alert_id(424242)], target=target, comment="c"))["linkAlerts"]

    for result, given in [(hidden, alert_id(floor.payroll.id)), (unknown, alert_id(424242))]:
        assert result["targetIncident"] is None
        [error] = result["errors"]
        assert (error["code"], error["field"], error["alertIds"]) == ("ALERT_NOT_FOUND", "alertIds", [given])
    assert hidden["errors"][0]["message"].replace(alert_id(floor.payroll.id), "N") == (
        unknown["errors"][0]["message"].replace(alert_id(424242), "N")
    )
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", floor.payroll.id) == floor.mixed_id


# --- the queue permission and write access --------------------------------------------------


async def test_viewer_without_queue_permission_may_not_list_incidents(make_user, floor):
    outsider = await make_user("outsider", "*=write", queue=False)
    errors = await outsider.errors(QUEUE)
    assert codes(errors) == ["FORBIDDEN"]
    assert errors[0]["path"] == ["incidents"]


@pytest.mark.parametrize(
    ("grants", "queue", "default_alert", "hr_alert"),
    [
        (["*=write"], True, True, True),
        (["*=write"], False, False, False),
        (["*=read"], True, False, False),
        (["default=write"], True, True, None),
        (["*=read", "default=write"], True, True, False),
        (["default=read", "hr=write"], True, False, True),
    ],
)
async def test_viewer_can_link_needs_write_access_and_the_queue(
    make_user, floor, grants, queue, default_alert, hr_alert
):
    """None means the viewer cannot read the alert at all."""
    viewer = await make_user("viewer", *grants, queue=queue)

    for alert, expected in [(floor.shared, default_alert), (floor.payroll, hr_alert)]:
        found = (await viewer(ALERT, id=alert_id(alert.id)))["alert"]
        assert (found["viewerCanLink"] if found else None) is expected


async def test_an_emptied_incident_stays_invisible_to_those_who_could_not_see_it(make_user, admin, ingest):
    outsider = await make_user("outsider", "default=write")
    secret, other = await ingest(
        alert_in("s", "Payroll export by j.doe to dropbox", scope="hr"), alert_in("o", scope="hr")
    )
    await admin(
        'mutation($ids: [ID!]!, $to: ID!) { linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: "c") { errors { code } } }',
        ids=[alert_id(secret.id)],
        to=inc(other.incident_id),
    )
    found = await outsider('{ incidents(filter: {search: "payroll"}) { totalCount edges { node { id } } } }')
    assert found["incidents"] == {"totalCount": 0, "edges": []}
    assert (await outsider("query($id: ID!) { incident(id: $id) { id } }", id=inc(secret.incident_id)))[
        "incident"
    ] is None
    # whoever could see it still can
    assert (await admin("query($id: ID!) { incident(id: $id) { status } }", id=inc(secret.incident_id)))[
        "incident"
    ] == {"status": "RESOLVED"}
