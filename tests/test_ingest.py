"""ingestAlerts: a detection source sends alerts; each joins a correlated incident or opens one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import httpx
import pytest

from app.config import Settings
from app.server import create_app
from tests.conftest import NOW, Api, alert_in, number_of
from tests.invariants import redirect_by_hand
from tests.test_link_alerts import LINK

INGEST = """
mutation($alerts: [AlertInput!]!) {
  ingestAlerts(alerts: $alerts) {
    alerts { id externalId title severity category scope detectedAt incident { id name } entities { kind value } }
    incidents { id name status severity alertCount lastActivityAt }
    logEntries { kind actor comment message incident { id } alert { id } otherIncident { id } }
    errors { code message field externalIds }
  }
}
"""

INCIDENT = """
query($id: ID!) {
  incident(id: $id) {
    id name status severity alertCount lastActivityAt
    activityLog { edges { node { kind actor message alert { id } } } }
  }
}
"""


def detection(
    external_id: str,
    title: str | None = None,
    *,
    minutes: float = 0,
    severity: str = "MEDIUM",
    entities: list[tuple[str, str]] | None = None,
    **extra,
) -> dict:
    """An AlertInput as a detection source sends it, detected `minutes` after NOW."""
    return {
        "externalId": external_id,
        "title": title or f"Detection {external_id}",
        "severity": severity,
        "category": "Execution",
        "detectedAt": (NOW + timedelta(minutes=minutes)).isoformat(),
        "entities": [
            {"kind": k, "value": v}
            for k, v in (entities if entities is not None else [("DEVICE", f"host-{external_id}")])
        ],
        **extra,
    }


async def send(api: Api, *alerts: dict) -> dict:
    return (await api(INGEST, alerts=list(alerts)))["ingestAlerts"]


async def incident_of(api: Api, incident_id) -> dict:
    return (await api(INCIDENT, id=incident_id))["incident"]


async def stored(pool) -> dict:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM alerts) AS alerts, (SELECT count(*) FROM incidents) AS incidents,"
        " (SELECT count(*) FROM activity_log) AS entries, (SELECT count(*) FROM alert_entities) AS entities"
    )
    return dict(row)


def incident_ids(result: dict) -> list[str]:
    return [a["incident"]["id"] for a in result["alerts"]]


def four_byte(n: int, start: int = 0) -> str:
    """n distinct four-byte characters (CJK Extension B): as many bytes as can be, and text that
    does not compress, so an index entry holds all of them."""
    return "".join(chr(0x20000 + (start + i) * 7919 % 0xA6E0) for i in range(n))


def three_byte(n: int) -> str:
    """n distinct CJK ideographs, three bytes each."""
    return "".join(chr(0x4E00 + i * 7919 % 0x5000) for i in range(n))


def deseret(n: int) -> str:
    """n four-byte capital letters (Deseret), which lower() maps to four-byte small ones."""
    return "".join(chr(0x10400 + i * 7 % 40) for i in range(n))


# --- a new incident, and replays ------------------------------------------------------------


async def test_an_alert_sharing_nothing_opens_an_incident_named_after_it(admin):
    result = await send(
        admin,
        detection(
            "edr-1",
            "  Ransomware behavior detected on WS-4821 ",
            severity="HIGH",
            entities=[("DEVICE", "WS-4821"), ("USER", "alice")],
            scope="finance",
        ),
    )

    assert result["errors"] == []
    [alert] = result["alerts"]
    assert alert == {
        "id": alert["id"],
        "externalId": "edr-1",
        "title": "Ransomware behavior detected on WS-4821",
        "severity": "HIGH",
        "category": "Execution",
        "scope": "finance",
        "detectedAt": "2026-11-20T12:00:00+00:00",
        "incident": {"id": alert["incident"]["id"], "name": "Ransomware behavior detected on WS-4821"},
        "entities": [{"kind": "DEVICE", "value": "WS-4821"}, {"kind": "USER", "value": "alice"}],
    }
    assert result["incidents"] == [
        {
            "id": alert["incident"]["id"],
            "name": "Ransomware behavior detected on WS-4821",
            "status": "ACTIVE",
            "severity": "HIGH",
            "alertCount": 1,
            "lastActivityAt": "2026-11-20T12:00:00+00:00",
        }
    ]


async def test_a_new_incident_logs_its_creation_only(admin):
    """The alert that opens an incident was not correlated by shared evidence, so the log says
    "Incident created for alert ..." and nothing more about it."""
    result = await send(admin, detection("edr-1", "Beacon on WS-1"))
    [alert] = result["alerts"]
    expected = [
        {
            "kind": "INCIDENT_CREATED",
            "actor": "system",
            "comment": None,
            "message": f'Incident created for alert #{number_of(alert["id"])} "Beacon on WS-1".',
            "incident": {"id": alert["incident"]["id"]},
            "alert": {"id": alert["id"]},
            "otherIncident": None,
        }
    ]

    assert result["logEntries"] == expected
    log = (await incident_of(admin, alert["incident"]["id"]))["activityLog"]["edges"]
    assert [e["node"]["kind"] for e in log] == ["INCIDENT_CREATED"]


async def test_scope_defaults_to_default(admin):
    result = await send(admin, detection("a"), detection("b", scope=None))
    assert [a["scope"] for a in result["alerts"]] == ["default", "default"]


async def test_detected_at_defaults_to_the_time_of_ingestion(admin, pool):
    alert = detection("a")
    del alert["detectedAt"]
    [stored_alert] = (await send(admin, alert))["alerts"]
    row = await pool.fetchrow("SELECT detected_at, created_at FROM alerts WHERE id = $1", number_of(stored_alert["id"]))
    assert row["detected_at"] == row["created_at"]


async def test_replay_returns_the_existing_alert_unchanged(admin, pool):
    """A replay touches no incident, so the payload's incidents (those the batch changed) is empty."""
    [first] = (await send(admin, detection("edr-1", "Beacon on WS-1", severity="LOW")))["alerts"]
    before = await stored(pool)

    replay = await send(
        admin, detection("edr-1", "Something else entirely", severity="HIGH", minutes=5, entities=[("USER", "someone")])
    )

    assert replay["errors"] == []
    assert replay["alerts"] == [first]
    assert replay["logEntries"] == []
    assert replay["incidents"] == []
    assert await stored(pool) == before


async def test_replay_of_a_moved_alert_does_not_move_it_back(admin, pool):
    a, b = (await send(admin, detection("a"), detection("b")))["alerts"]
    moved = await admin(LINK, ids=[a["id"]], target={"existingIncidentId": b["incident"]["id"]}, comment="same story")
    assert moved["linkAlerts"]["errors"] == []
    before = await stored(pool)

    replay = await send(admin, detection("a"))

    assert replay["alerts"][0]["incident"] == b["incident"]
    assert await stored(pool) == before


async def test_the_same_external_id_twice_in_one_batch_is_stored_once(admin, pool):
    result = await send(admin, detection("dup", "first"), detection("dup", "second"))
    assert result["errors"] == []
    assert [a["title"] for a in result["alerts"]] == ["first", "first"]
    assert result["alerts"][0]["id"] == result["alerts"][1]["id"]
    assert (await stored(pool))["alerts"] == 1


# --- correlation ----------------------------------------------------------------------------


async def test_an_alert_sharing_an_entity_joins_that_incident(admin):
    [first] = (await send(admin, detection("a", "Phish to WS-1", entities=[("DEVICE", "WS-1")])))["alerts"]

    result = await send(admin, detection("b", "Beacon from ws-1", minutes=30, entities=[("DEVICE", "  ws-1 ")]))

    [second] = result["alerts"]
    assert second["incident"] == first["incident"]
    assert result["logEntries"] == [
        {
            "kind": "ALERT_CORRELATED",
            "actor": "system",
            "comment": None,
            "message": f'Alert #{number_of(second["id"])} "Beacon from ws-1" was correlated with this incident by shared evidence.',
            "incident": {"id": first["incident"]["id"]},
            "alert": {"id": second["id"]},
            "otherIncident": None,
        }
    ]
    [incident] = result["incidents"]
    assert (incident["id"], incident["name"], incident["alertCount"]) == (first["incident"]["id"], "Phish to WS-1", 2)
    log = (await incident_of(admin, first["incident"]["id"]))["activityLog"]["edges"]
    assert [(e["node"]["kind"], e["node"]["actor"]) for e in log] == [
        ("ALERT_CORRELATED", "system"),
        ("INCIDENT_CREATED", "system"),
    ]


async def test_the_most_recently_detected_sharing_alert_decides(admin):
    on_host, by_user = (
        await send(
            admin,
            detection("a", entities=[("DEVICE", "WS-1")], minutes=0),
            detection("b", entities=[("USER", "alice")], minutes=60),
        )
    )["alerts"]
    assert on_host["incident"] != by_user["incident"]

    result = await send(
        admin,
        detection("c", entities=[("DEVICE", "WS-1"), ("USER", "Alice")], minutes=90),
        detection("d", entities=[("DEVICE", "ws-1")], minutes=91),
    )

    # c shares WS-1 with a and alice with b; b is the more recent. Then d shares WS-1 with c.
    assert incident_ids(result) == [by_user["incident"]["id"], by_user["incident"]["id"]]


@pytest.mark.parametrize(("gap", "joins"), [(timedelta(hours=24), True), (timedelta(hours=24, seconds=1), False)])
async def test_correlation_window_is_24_hours_back(admin, gap, joins):
    [old] = (await send(admin, detection("a", entities=[("IP", "185.220.101.7")])))["alerts"]

    [new] = (await send(admin, detection("b", entities=[("IP", "185.220.101.7")], minutes=gap.total_seconds() / 60)))[
        "alerts"
    ]

    assert (new["incident"] == old["incident"]) is joins


@pytest.mark.parametrize(("status", "joins"), [("in_progress", True), ("resolved", False), ("redirected", False)])
async def test_only_active_or_in_progress_incidents_take_correlated_alerts(admin, pool, status, joins):
    old, elsewhere = (await send(admin, detection("a", entities=[("FILE", "mimikatz.exe")]), detection("x")))["alerts"]
    if status == "redirected":  # as a merge leaves it: its alert in the target (a REDIRECTED incident holds none)
        await redirect_by_hand(pool, number_of(old["incident"]["id"]), number_of(elsewhere["incident"]["id"]))
    else:
        await pool.execute(
            "UPDATE incidents SET status = $2::incident_status WHERE id = $1", number_of(old["incident"]["id"]), status
        )

    result = await send(admin, detection("b", "Mimikatz again", entities=[("FILE", "MIMIKATZ.EXE")], minutes=10))

    [new] = result["alerts"]
    assert (new["incident"] == old["incident"]) is joins
    if status == "redirected":  # it joins the incident the correlated alert is in now, the merge's target
        assert new["incident"]["id"] == elsewhere["incident"]["id"]
    elif not joins:
        assert new["incident"]["name"] == "Mimikatz again"
        assert [e["kind"] for e in result["logEntries"]] == ["INCIDENT_CREATED"]


async def test_a_closed_incident_is_skipped_for_the_latest_open_one(admin, pool):
    """When the most recent sharing alert sits in a resolved incident, the alert joins the open
    incident of the most recent sharing alert that is still in one: that story is still live."""
    older, newer = (
        await send(
            admin,
            detection("a", entities=[("USER", "bob")], minutes=0),
            detection("b", entities=[("USER", "bob")], minutes=10),
        )
    )["alerts"]
    assert older["incident"] == newer["incident"]
    split = await admin(LINK, ids=[newer["id"]], target={"createNew": True}, comment="different story")
    moved_to = split["linkAlerts"]["targetIncident"]["id"]
    await pool.execute("UPDATE incidents SET status = 'resolved' WHERE id = $1", number_of(moved_to))

    [new] = (await send(admin, detection("d", entities=[("USER", "BOB")], minutes=30)))["alerts"]

    assert new["incident"]["id"] == older["incident"]["id"]


async def test_correlation_follows_an_alert_that_was_moved(admin):
    a, b = (await send(admin, detection("a", entities=[("DEVICE", "WS-1")]), detection("b")))["alerts"]
    await admin(LINK, ids=[a["id"]], target={"existingIncidentId": b["incident"]["id"]}, comment="same story")

    [new] = (await send(admin, detection("c", entities=[("DEVICE", "WS-1")], minutes=5)))["alerts"]

    assert new["incident"] == b["incident"]


async def test_same_value_of_different_kinds_does_not_correlate(admin):
    [user] = (await send(admin, detection("a", entities=[("USER", "backup")])))["alerts"]
    result = await send(
        admin,
        detection("b", entities=[("DEVICE", "backup")], minutes=1),
        detection("c", entities=[("FILE", "backup"), ("URL", "BACKUP")], minutes=2),
    )
    assert len({user["incident"]["id"], *incident_ids(result)}) == 3


async def test_an_alert_without_entities_opens_its_own_incident(admin):
    result = await send(admin, detection("a", entities=[]), detection("b", entities=[], minutes=1))
    assert len(set(incident_ids(result))) == 2


async def test_alerts_in_one_batch_correlate_with_each_other_in_order(admin):
    result = await send(
        admin,
        detection("a", "Phish opened on WS-1", entities=[("DEVICE", "WS-1")], minutes=0),
        detection("b", "Token theft", entities=[("DEVICE", "WS-1"), ("USER", "carol")], minutes=1),
        detection("c", "Mailbox rule by carol", entities=[("USER", "CAROL")], minutes=2),
        detection("z", "Unrelated", minutes=3),
    )

    a, b, c, z = result["alerts"]
    assert a["incident"] == b["incident"] == c["incident"] != z["incident"]
    assert [(e["kind"], e["alert"]["id"]) for e in result["logEntries"]] == [
        ("INCIDENT_CREATED", a["id"]),
        ("ALERT_CORRELATED", b["id"]),
        ("ALERT_CORRELATED", c["id"]),
        ("INCIDENT_CREATED", z["id"]),
    ]
    assert [(i["id"], i["alertCount"]) for i in result["incidents"]] == [
        (a["incident"]["id"], 3),
        (z["incident"]["id"], 1),
    ]


async def test_derived_fields_follow_the_alerts(admin):
    shared = [("DEVICE", "WS-3")]
    await send(admin, detection("a", severity="LOW", minutes=0, entities=shared))
    result = await send(
        admin,
        detection("b", severity="HIGH", minutes=30, entities=shared),
        detection("c", severity="INFORMATIONAL", minutes=20, entities=shared),
    )

    # c was detected before b: it correlates with a, and leaves the latest activity at b's time.
    [incident] = result["incidents"]
    assert (incident["severity"], incident["alertCount"], incident["lastActivityAt"]) == (
        "HIGH",
        3,
        "2026-11-20T12:30:00+00:00",
    )
    assert {k: v for k, v in (await incident_of(admin, incident["id"])).items() if k != "activityLog"} == incident


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "t" * 1001}, "title"),
        ({"externalId": "x" * 501}, "externalId"),
        ({"category": ""}, "category"),
        ({"scope": " "}, "scope"),
        ({"entities": [{"kind": "DEVICE", "value": "  "}]}, "entities"),
        ({"entities": [{"kind": "DEVICE", "value": "v" * 1001}]}, "entities"),
        ({"entities": [{"kind": "IP", "value": f"10.0.0.{n}"} for n in range(101)]}, "entities"),
        # Just past each limit in four-byte characters: by characters, or by bytes where a btree
        # holds the text (scope 600, entity values 1,300).
        ({"externalId": four_byte(501)}, "externalId"),
        ({"title": four_byte(1001)}, "title"),
        ({"category": four_byte(201)}, "category"),
        ({"scope": four_byte(151)}, "scope"),
        ({"entities": [{"kind": "DEVICE", "value": four_byte(326)}]}, "entities"),
        # The cases, within the limits in characters and once an internal error: an id
        # of 500 four-byte characters in a scope of 200, and an entity of 1,000 CJK characters.
        ({"externalId": four_byte(500), "scope": four_byte(200, 600)}, "scope"),
        ({"entities": [{"kind": "FILE", "value": three_byte(1000)}]}, "entities"),
    ],
)
async def test_one_invalid_alert_refuses_the_whole_batch(admin, pool, bad, field):
    broken = {**detection("bad-one"), **bad}

    result = await send(admin, detection("good-1"), broken, detection("good-2", entities=[("DEVICE", "host-good-1")]))

    assert result["alerts"] == [] and result["incidents"] == [] and result["logEntries"] == []
    [error] = result["errors"]
    assert error["code"] == "INVALID_INPUT"
    assert error["field"] == f"alerts.1.{field}"
    assert error["externalIds"] == [broken["externalId"]]
    assert await stored(pool) == {"alerts": 0, "incidents": 0, "entries": 0, "entities": 0}


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        (
            {"scope": four_byte(151)},
            "scope",
            "scope must be 1 to 200 characters and at most 600 bytes in UTF-8, without NUL.",
        ),
        (
            {"entities": [{"kind": "USER", "value": "alice"}, {"kind": "FILE", "value": three_byte(1000)}]},
            "entities",
            "Entity values must be 1 to 1,000 characters and at most 1,300 bytes in UTF-8, without NUL.",
        ),
        ({"externalId": four_byte(501)}, "externalId", "externalId must be 1 to 500 characters, without NUL."),
    ],
)
async def test_a_refusal_states_the_limit_in_characters_and_bytes(admin, bad, field, message):
    broken = {**detection("edr-7"), **bad}
    result = await send(admin, detection("edr-6"), broken)
    assert [(e["code"], e["field"], e["message"], e["externalIds"]) for e in result["errors"]] == [
        ("INVALID_INPUT", f"alerts.1.{field}", message, [broken["externalId"]])
    ]


async def test_every_text_at_its_limit_in_four_byte_characters_is_stored(admin, pool):
    """The alerts' unique key holds a 600-byte scope and a 2,000-byte id; an entity value of 1,300
    bytes, and 1,000 characters of ASCII, fit the entities' keys; titles and categories are in
    no btree. None of it compresses."""
    at_limit = detection(
        four_byte(500),
        four_byte(1000, 1000),
        scope=four_byte(150, 2000),
        category=four_byte(200, 3000),
        entities=[("FILE", four_byte(325, 4000)), ("URL", "".join(chr(33 + i * 37 % 94) for i in range(1000)))],
    )

    result = await send(admin, at_limit)

    assert result["errors"] == []
    [alert] = result["alerts"]
    assert (alert["externalId"], alert["title"], alert["scope"], alert["category"]) == (
        at_limit["externalId"],
        at_limit["title"],
        at_limit["scope"],
        at_limit["category"],
    )
    assert alert["entities"] == at_limit["entities"]
    assert (await send(admin, at_limit))["alerts"] == [alert]
    assert await stored(pool) == {"alerts": 1, "incidents": 1, "entries": 1, "entities": 2}


async def test_an_entity_at_its_byte_limit_correlates_case_insensitively(admin):
    capitals = deseret(325)
    assert len(capitals.encode()) == 1300 and capitals.lower() != capitals
    [first] = (await send(admin, detection("a", entities=[("USER", capitals)])))["alerts"]

    [second] = (await send(admin, detection("b", minutes=5, entities=[("USER", capitals.lower())])))["alerts"]

    assert second["incident"] == first["incident"]


async def test_the_entity_indexes_hold_twice_the_byte_limit_but_not_a_btree_entry_more(admin, pool):
    """lower() can double a value's bytes in some locales (Turkish "I" → "ı"): the correlation
    index then holds 2,600 bytes. A btree entry holds 2,704 at most, whatever the characters."""
    [alert] = (await send(admin, detection("a", entities=[])))["alerts"]
    insert = "INSERT INTO alert_entities (alert_id, kind, value, detected_at) VALUES ($1, $2, $3, now())"

    await pool.execute(insert, number_of(alert["id"]), "file", four_byte(650))

    with pytest.raises(asyncpg.ProgramLimitExceededError, match="btree"):
        await pool.execute(insert, number_of(alert["id"]), "url", four_byte(677))
    assert await pool.fetchval("SELECT octet_length(value_key) FROM alert_entities") == 2600


async def test_every_invalid_alert_is_named(admin, pool):
    result = await send(admin, detection("a", title=" "), detection("ok"), detection("c", category=" "))
    assert [(e["code"], e["field"], e["externalIds"]) for e in result["errors"]] == [
        ("INVALID_INPUT", "alerts.0.title", ["a"]),
        ("INVALID_INPUT", "alerts.2.category", ["c"]),
    ]
    assert (await stored(pool))["alerts"] == 0


async def test_more_than_500_alerts_is_invalid_input(admin, pool):
    result = await send(admin, *[detection(f"a{n}") for n in range(501)])
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID_INPUT", "alerts")]
    assert "500" in result["errors"][0]["message"]
    assert (await stored(pool))["alerts"] == 0


async def test_500_alerts_are_accepted(admin, pool):
    batch = [detection(f"a{n}", entities=[("DEVICE", "shared")], minutes=n / 60) for n in range(500)]
    result = await send(admin, *batch)
    assert result["errors"] == []
    assert len(result["incidents"]) == 1 and result["incidents"][0]["alertCount"] == 500


async def test_an_empty_batch_is_invalid_input(admin):
    result = await send(admin)
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID_INPUT", "alerts")]


async def test_a_user_without_ingest_permission_is_forbidden(make_user, pool):
    analyst = await make_user("analyst", "*=write")
    result = await send(analyst, detection("a"))
    assert [e["code"] for e in result["errors"]] == ["FORBIDDEN"]
    assert result["alerts"] == []
    assert await stored(pool) == {"alerts": 0, "incidents": 0, "entries": 0, "entities": 0}


async def test_a_sensor_without_grants_stores_alerts_and_learns_nothing_else(make_user, admin, pool):
    """The payload shows only what the viewer may read, like every query."""
    (existing,) = (
        await send(
            admin, detection("known", "Secret finance alert", scope="finance", entities=[("DEVICE", "shared-host")])
        )
    )["alerts"]
    sensor = await make_user("sensor", queue=False, ingest=True)
    result = await send(sensor, detection("a", entities=[("DEVICE", "shared-host")]))
    assert result == {**result, "errors": [], "alerts": [], "incidents": [], "logEntries": []}
    assert (await stored(pool))["alerts"] == 2
    # the finance incident takes no default-scope alert: correlation stays within a scope
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE external_id = 'a'") != number_of(
        existing["incident"]["id"]
    )


# --- a configurable window ------------------------------------------------------------------


@pytest.fixture
def client_with_window(pool, database_url, monkeypatch):
    """A client of an app whose settings came from CORRELATION_WINDOW_HOURS in the environment."""

    async def make(hours: str) -> httpx.AsyncClient:
        monkeypatch.setenv("CORRELATION_WINDOW_HOURS", hours)
        settings = Settings(**{**Settings.from_env().__dict__, "database_url": database_url})
        assert settings.correlation_window_hours == float(hours)
        app = create_app(settings, pool=pool)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    return make


@pytest.mark.parametrize(("hours", "gap_hours", "joins"), [("2", 1.5, True), ("2", 3, False), ("48", 36, True)])
async def test_correlation_window_comes_from_settings(client_with_window, admin, hours, gap_hours, joins):
    async with await client_with_window(hours) as client:
        source = Api(client, admin.token)
        [old] = (await send(source, detection("a", entities=[("USER", "dave")])))["alerts"]
        [new] = (await send(source, detection("b", entities=[("USER", "dave")], minutes=gap_hours * 60)))["alerts"]
    assert (new["incident"] == old["incident"]) is joins


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "2999-01-01T00:00:00+00:00",
        "1900-01-01T00:00:00+00:00",
    ],
)
async def test_an_impossible_detection_time_is_invalid_input(admin, pool, moment):
    result = await send(admin, detection("odd", detectedAt=moment))
    assert [(e["code"], e["field"], e["externalIds"]) for e in result["errors"]] == [
        ("INVALID_INPUT", "alerts.0.detectedAt", ["odd"])
    ]
    assert (await stored(pool))["alerts"] == 0


async def test_an_external_id_names_an_alert_within_its_scope(make_user, admin, pool):
    """A source reading only `default` learns nothing of an `hr` alert with the same externalId."""
    await send(admin, detection("shared-id", "Payroll export", scope="hr"))
    sensor = await make_user("sensor", "default=read", ingest=True)
    result = await send(sensor, detection("shared-id", "Beacon on WS-1"))
    assert [(a["externalId"], a["title"], a["scope"]) for a in result["alerts"]] == [
        ("shared-id", "Beacon on WS-1", "default")
    ]
    assert (await stored(pool))["alerts"] == 2
    again = await send(sensor, detection("shared-id", "Beacon on WS-1"))
    assert again["alerts"][0]["id"] == result["alerts"][0]["id"]
    assert (await stored(pool))["alerts"] == 2


# --- how much correlation gathers into one incident ----------------------------------------


@pytest.fixture
async def capped(pool, database_url, monkeypatch):
    """An admin's Api on an app whose settings came from CORRELATION_MAX_ALERTS in the environment."""
    clients = []

    async def make(admin: Api, most: str) -> Api:
        monkeypatch.setenv("CORRELATION_MAX_ALERTS", most)
        settings = Settings(**{**Settings.from_env().__dict__, "database_url": database_url})
        assert settings.correlation_max_alerts == int(most)
        app = create_app(settings, pool=pool)
        clients.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"))
        return Api(clients[-1], admin.token)

    yield make
    for client in clients:
        await client.aclose()


async def test_a_full_incident_takes_no_more_correlated_alerts(capped, admin):
    """At CORRELATION_MAX_ALERTS the next related alert opens an incident of its own, and the
    alerts after it that share the evidence join that one."""
    api = await capped(admin, "3")
    first = (await send(api, *(detection(f"a{n}", entities=[("USER", "dave")], minutes=n) for n in range(3))))["alerts"]
    assert len({a["incident"]["id"] for a in first}) == 1
    full = first[0]["incident"]["id"]

    result = await send(api, detection("b0", "Dave again", entities=[("USER", "Dave")], minutes=5))
    [overflow] = result["alerts"]
    assert overflow["incident"]["id"] != full
    assert overflow["incident"]["name"] == "Dave again"
    assert [e["kind"] for e in result["logEntries"]] == ["INCIDENT_CREATED"]
    then = (await send(api, detection("b1", entities=[("USER", "dave")], minutes=6)))["alerts"]
    assert then[0]["incident"]["id"] == overflow["incident"]["id"]
    assert [
        (i["id"], i["alertCount"])
        for i in [await incident_of(api, full), await incident_of(api, overflow["incident"]["id"])]
    ] == [
        (full, 3),
        (overflow["incident"]["id"], 2),
    ]


async def test_a_batch_fills_an_incident_and_overflows_in_order(capped, admin):
    api = await capped(admin, "3")
    [stored_first] = (await send(api, detection("a0", entities=[("USER", "dave")])))["alerts"]
    result = await send(api, *(detection(f"b{n}", entities=[("USER", "dave")], minutes=1 + n) for n in range(5)))

    incidents = incident_ids(result)
    assert incidents[:2] == [stored_first["incident"]["id"]] * 2  # 1 stored + 2 = 3
    assert incidents[2] not in incidents[:2] and incidents[2:] == [incidents[2]] * 3
    assert [(i["id"], i["alertCount"]) for i in result["incidents"]] == [
        (stored_first["incident"]["id"], 3),
        (incidents[2], 3),
    ]
    assert [e["kind"] for e in result["logEntries"]] == ["ALERT_CORRELATED"] * 2 + ["INCIDENT_CREATED"] + [
        "ALERT_CORRELATED"
    ] * 2


async def test_a_full_incident_leaves_the_alert_to_another_relative(ingest):
    """Only the full incident's evidence counts for nothing: the alert's other evidence still
    correlates, with the most recent relative there."""
    [on_host] = await ingest(alert_in("h", entities=[("device", "ws-9")]), max_alerts=2)
    dave = await ingest(
        *(alert_in(f"d{n}", entities=[("user", "dave")], minutes=10 + n) for n in range(2)), max_alerts=2
    )
    assert dave[0].incident_id == dave[1].incident_id != on_host.incident_id

    [both] = await ingest(alert_in("x", entities=[("user", "dave"), ("device", "WS-9")], minutes=20), max_alerts=2)

    assert both.incident_id == on_host.incident_id


async def test_moves_are_not_capped(capped, admin):
    """The cap is on what the machine decides; an analyst may link alerts into a full incident."""
    api = await capped(admin, "2")
    full = (await send(api, *(detection(f"a{n}", entities=[("USER", "dave")], minutes=n) for n in range(2))))["alerts"]
    [other] = (await send(api, detection("z", entities=[("USER", "erin")])))["alerts"]
    moved = (
        await api(
            LINK, ids=[other["id"]], target={"existingIncidentId": full[0]["incident"]["id"]}, comment="same story"
        )
    )["linkAlerts"]
    assert moved["errors"] == []
    assert (await incident_of(api, full[0]["incident"]["id"]))["alertCount"] == 3


async def test_concurrent_batches_do_not_overfill_an_incident(ingest, pool):
    """Two batches that both saw room for their alerts wait for the incident's lock; the second
    to take it finds the first's alerts there and decides again: the incident ends full, not over."""
    [first] = await ingest(alert_in("a", entities=[("user", "dave")]), max_alerts=4)
    batches = [[alert_in(f"{side}{n}", entities=[("user", "dave")], minutes=1 + n) for n in range(2)] for side in "bc"]
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", first.incident_id)
        running = [asyncio.create_task(ingest(*b, max_alerts=4)) for b in batches]
        for _ in range(500):  # both decided, both waiting for the incident
            waiting = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'"
            )
            if waiting == 2:
                break
            await asyncio.sleep(0.01)
        assert waiting == 2
    b, c = await asyncio.gather(*running)
    incidents = {a.incident_id for a in b + c}
    counts = dict(await pool.fetch("SELECT id, alert_count FROM incidents WHERE id = ANY($1::bigint[])", [*incidents]))
    assert counts[first.incident_id] == 4
    assert sorted(counts.values()) == [1, 4]
