"""Reading the queue: incidents and alerts, typeahead, filters and keyset pagination."""

from __future__ import annotations

import base64
import json
import random

import orjson
import pytest

from app.domain import evidence, incidents
from app.domain import search as search_rules
from app.domain.ids import LOG_ENTRY, parse_id
from app.domain.periodic import Periodic
from app.domain.viewers import Viewer
from tests.conftest import alert_id, alert_in, inc, log_id
from tests.invariants import redirect_by_hand

INCIDENTS = """
query($filter: IncidentFilter, $first: Int, $after: String) {
  incidents(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id name status severity lastActivityAt alertCount } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""

ALERTS = """
query($filter: AlertFilter, $first: Int, $after: String) {
  alerts(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id title severity status detectedAt incident { id } } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""

INCIDENT = """
query($id: ID!, $first: Int, $after: String) {
  incident(id: $id) {
    id name alertCount
    alerts(first: $first, after: $after) {
      edges { cursor node { id title detectedAt } }
      pageInfo { hasNextPage endCursor }
      totalCount
    }
  }
}
"""

ACTIVITY_LOG = """
query($id: ID!, $first: Int, $after: String) {
  incident(id: $id) {
    activityLog(first: $first, after: $after) {
      edges { cursor node { id kind createdAt alert { id } } }
      pageInfo { hasNextPage endCursor }
      totalCount
    }
  }
}
"""

ALERT = """
query($id: ID!) {
  alert(id: $id) {
    id externalId title severity status category scope detectedAt
    incident { id name }
    entities { kind value }
  }
}
"""


async def queue(api, search=None, *, first=None, after=None, **flt) -> dict:
    flt = {**flt, "search": search} if search is not None else flt
    data = await api(INCIDENTS, filter=flt or None, first=first, after=after)
    return data["incidents"]


async def names(api, search=None, **flt) -> list[str]:
    return [e["node"]["name"] for e in (await queue(api, search, first=100, **flt))["edges"]]


async def alert_titles(api, **flt) -> list[str]:
    data = await api(ALERTS, filter=flt or None, first=100)
    return [e["node"]["title"] for e in data["alerts"]["edges"]]


async def incidents_named(ingest, *titles: str):
    """One incident per title, each detected a minute after the previous one (the last is newest)."""
    alerts = await ingest(*[alert_in(f"x{n}", title, minutes=n) for n, title in enumerate(titles)])
    return [a.incident_id for a in alerts]


def codes(errors: list[dict]) -> list[str]:
    return [e["extensions"]["code"] for e in errors]


def cursor(*parts) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


# --- typeahead ------------------------------------------------------------------------------

SOC_NAMES = [
    "Possible Lateral movement from WS-4821 using remote services",
    "Lateral tool transfer on SRV-0007",
    "Movement of archive files to USB on LT-1000",
    "Phishing email delivered to alice.smith@contoso.com",
    "Password spray against bob.jones",
]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("lat mov", ["Possible Lateral movement from WS-4821 using remote services"]),
        ("MOVEMENT lateral", ["Possible Lateral movement from WS-4821 using remote services"]),
        ("4821", ["Possible Lateral movement from WS-4821 using remote services"]),
        ("ws-4821 REMOTE", ["Possible Lateral movement from WS-4821 using remote services"]),
        ("smith", ["Phishing email delivered to alice.smith@contoso.com"]),
        ("contoso.com alice", ["Phishing email delivered to alice.smith@contoso.com"]),
        ("lateral", [SOC_NAMES[0], "Lateral tool transfer on SRV-0007"]),
        ("  movement   ", [SOC_NAMES[0], "Movement of archive files to USB on LT-1000"]),
        ("lateral usb", []),
        ("kerberoasting", []),
    ],
)
async def test_typeahead_finds_names_holding_every_word_in_any_order(admin, ingest, search, expected):
    await incidents_named(ingest, *SOC_NAMES)

    found = await names(admin, search)

    # Newest first: SOC_NAMES were detected in list order, so the later one comes first.
    assert found == sorted(expected, key=SOC_NAMES.index, reverse=True)


async def test_empty_search_is_the_whole_queue(admin, ingest):
    await incidents_named(ingest, *SOC_NAMES)
    assert await names(admin, "") == list(reversed(SOC_NAMES))
    assert await names(admin, "   ") == list(reversed(SOC_NAMES))


async def test_incident_number_puts_that_incident_first_then_name_matches(admin, ingest):
    # Incident 6 is the oldest and its name has no "6" in it; three newer names contain "6".
    titles = ["Logon from 10.0.0.16", "Beacon to 10.6.1.9", "Noise", "WS-6000 ransomware", "Quiet"]
    ids = await incidents_named(ingest, *titles)
    (pinned,) = await ingest(alert_in("old", "Token impersonation on SRV-A", minutes=-600))
    assert pinned.incident_id == 6 and ids == [1, 2, 3, 4, 5]

    found = await queue(admin, "6", first=10)

    assert [e["node"]["id"] for e in found["edges"]] == [inc(6), inc(4), inc(2), inc(1)]
    assert found["totalCount"] == 4
    assert found["pageInfo"]["hasNextPage"] is False
    assert [e["node"]["id"] for e in (await queue(admin, "#6", first=10))["edges"]] == [inc(6)]
    # An incident's id pasted into the typeahead is its number, and no name holds it.
    assert [e["node"]["id"] for e in (await queue(admin, inc(6), first=10))["edges"]] == [inc(6)]


async def test_incident_whose_name_holds_its_own_number_is_listed_once(admin, ingest):
    await incidents_named(ingest, "Beacon from WS-1", "Beacon from WS-12")
    found = await queue(admin, "1", first=10)
    assert [e["node"]["id"] for e in found["edges"]] == [inc(1), inc(2)]
    assert found["totalCount"] == 2


async def test_incident_number_that_does_not_exist_finds_name_matches_only(admin, ingest):
    await incidents_named(ingest, "Beacon to 10.0.0.99", "Noise")
    found = await queue(admin, "99", first=10)
    assert [e["node"]["name"] for e in found["edges"]] == ["Beacon to 10.0.0.99"]
    assert found["totalCount"] == 1


async def test_pinned_incident_pages_on_into_the_name_matches(admin, ingest):
    await incidents_named(ingest, "Logon from 10.0.0.16", "Beacon to 10.6.1.9", "WS-6000 ransomware", "a", "b")
    await ingest(alert_in("old", "Token impersonation on SRV-A", minutes=-600))

    seen = []
    after = None
    while True:
        page = await queue(admin, "6", first=1, after=after)
        assert page["totalCount"] == 4
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert seen == [inc(6), inc(3), inc(2), inc(1)]


async def test_queue_is_most_recently_active_first(admin, ingest):
    first, second, third = await incidents_named(ingest, "Old story on WS-1", "Middle story", "New story")
    assert await names(admin) == ["New story", "Middle story", "Old story on WS-1"]

    # A new alert on WS-1 joins the oldest incident and makes it the most recently active.
    await ingest(alert_in("late", "Follow-up on WS-1", minutes=30, entities=[("device", "host-x0")]))

    found = (await queue(admin))["edges"]
    assert [e["node"]["id"] for e in found] == [inc(first), inc(third), inc(second)]
    assert found[0]["node"]["lastActivityAt"].startswith("2026-11-20T12:30")


SPECIAL_NAMES = [
    "100% CPU by miner.exe",
    "Access to file_share on SRV-1",
    "Mailbox of O'Brien forwarded",
    "Run of C:\\Windows\\Temp\\run.bat",
    "Rule *wild* matched",
    "R&D share enumerated",
    "cmd | powershell chain",
    "Beacon!",
    "svchost (unsigned) started",
    "plain name without any of them",
    "rate 100x0 filesXshare",
]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("%", ["100% CPU by miner.exe"]),
        ("100%", ["100% CPU by miner.exe"]),
        ("_", ["Access to file_share on SRV-1"]),
        ("file_share", ["Access to file_share on SRV-1"]),
        ("'", ["Mailbox of O'Brien forwarded"]),
        ("o'brien", ["Mailbox of O'Brien forwarded"]),
        (":", ["Run of C:\\Windows\\Temp\\run.bat"]),
        ("\\", ["Run of C:\\Windows\\Temp\\run.bat"]),
        ("c:\\windows\\temp", ["Run of C:\\Windows\\Temp\\run.bat"]),
        ("*", ["Rule *wild* matched"]),
        ("*wild*", ["Rule *wild* matched"]),
        ("&", ["R&D share enumerated"]),
        ("|", ["cmd | powershell chain"]),
        ("!", ["Beacon!"]),
        ("(", ["svchost (unsigned) started"]),
        (")", ["svchost (unsigned) started"]),
        ("(unsigned)", ["svchost (unsigned) started"]),
        ("!( ) & | :*", []),
        ("\\%_", []),
        ("'; DROP TABLE incidents; --", []),
    ],
)
async def test_special_characters_are_plain_text(admin, ingest, pool, search, expected):
    """`%` and `_` would match anything and `\\` would escape if they reached ILIKE as syntax."""
    await incidents_named(ingest, *SPECIAL_NAMES)

    assert sorted(await names(admin, search)) == sorted(expected)
    assert sorted(await alert_titles(admin, search=search)) == sorted(expected)
    assert await pool.fetchval("SELECT count(*) FROM incidents") == len(SPECIAL_NAMES)


async def test_status_and_severity_filters(admin, ingest, pool):
    ids = await incidents_named(ingest, "one", "two", "three", "four")
    await pool.execute("UPDATE incidents SET status = 'in_progress' WHERE id = $1", ids[0])
    await pool.execute("UPDATE incidents SET status = 'resolved', severity = 'high' WHERE id = $1", ids[1])
    await pool.execute("UPDATE incidents SET severity = 'low' WHERE id = $1", ids[2])

    assert await names(admin, status=["ACTIVE"]) == ["four", "three"]
    assert await names(admin, status=["ACTIVE", "IN_PROGRESS"]) == ["four", "three", "one"]
    assert await names(admin, severity=["HIGH"]) == ["two"]
    assert await names(admin, severity=["LOW", "HIGH"]) == ["three", "two"]
    assert await names(admin, status=["ACTIVE"], severity=["MEDIUM"]) == ["four"]
    assert await names(admin, "t", status=["RESOLVED", "ACTIVE"]) == ["three", "two"]
    assert (await queue(admin, status=["ACTIVE"]))["totalCount"] == 2


async def test_number_search_respects_the_filters(admin, ingest, pool):
    await incidents_named(ingest, "one", "two on WS-2")
    await pool.execute("UPDATE incidents SET status = 'resolved' WHERE id = 2")
    assert await names(admin, "2", status=["ACTIVE"]) == []
    assert await names(admin, "2", status=["RESOLVED"]) == ["two on WS-2"]


# --- pagination -----------------------------------------------------------------------------


async def read_all_pages(api, first, *, between_pages=None, **flt) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page = await queue(api, first=first, after=after, **flt)
        assert len(page["edges"]) <= first
        seen += [e["node"]["id"] for e in page["edges"]]
        if page["edges"]:
            assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]
        if between_pages:
            await between_pages()


async def test_pages_cover_the_queue_once_in_order(admin, ingest):
    ids = await incidents_named(ingest, *[f"story {n}" for n in range(7)])

    first_page = await queue(admin, first=3)
    assert first_page["totalCount"] == 7
    assert first_page["pageInfo"]["hasNextPage"] is True
    assert await read_all_pages(admin, 3) == [inc(i) for i in reversed(ids)]


async def test_last_page_has_no_next_page(admin, ingest):
    await incidents_named(ingest, "a", "b")
    page = await queue(admin, first=2)
    assert page["pageInfo"]["hasNextPage"] is False
    assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
    empty = await queue(admin, "nothing like it", first=2)
    assert empty == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}, "totalCount": 0}


PAGE_INFO = "pageInfo { hasPreviousPage hasNextPage startCursor endCursor }"


def page_info_of(connection: dict) -> tuple[bool, bool, str | None, str | None]:
    """(hasPreviousPage, hasNextPage, startCursor, endCursor), checked against the edges."""
    info = connection["pageInfo"]
    cursors = [e["cursor"] for e in connection["edges"]]
    assert info["startCursor"] == (cursors[0] if cursors else None)
    assert info["endCursor"] == (cursors[-1] if cursors else None)
    return info["hasPreviousPage"], info["hasNextPage"], info["startCursor"], info["endCursor"]


async def test_queue_pages_say_whether_items_come_before_them(admin, ingest):
    await incidents_named(ingest, "a", "b", "c")
    query = INCIDENTS.replace("pageInfo { hasNextPage endCursor }", PAGE_INFO)

    first = (await admin(query, first=2))["incidents"]
    assert page_info_of(first)[:2] == (False, True)
    last = (await admin(query, first=2, after=first["pageInfo"]["endCursor"]))["incidents"]
    assert page_info_of(last)[:2] == (True, False)
    assert len(last["edges"]) == 1
    empty = (await admin(query, filter={"search": "nothing like it"}, first=2))["incidents"]
    assert page_info_of(empty) == (False, False, None, None)


async def test_pages_after_the_pinned_incident_have_items_before_them(admin, ingest):
    await incidents_named(ingest, "Beacon to 10.6.1.9", "a", "b", "c", "d", "e")
    query = INCIDENTS.replace("pageInfo { hasNextPage endCursor }", PAGE_INFO)

    pinned = (await admin(query, filter={"search": "6"}, first=1))["incidents"]
    assert [e["node"]["id"] for e in pinned["edges"]] == [inc(6)]
    assert page_info_of(pinned)[:2] == (False, True)
    after = await admin(query, filter={"search": "6"}, first=1, after=pinned["pageInfo"]["endCursor"])
    assert [e["node"]["id"] for e in after["incidents"]["edges"]] == [inc(1)]
    assert page_info_of(after["incidents"])[:2] == (True, False)


async def test_an_incidents_alerts_and_log_pages_say_whether_items_come_before_them(admin, ingest):
    shared = [("device", "WS-3")]
    alerts = await ingest(*[alert_in(f"a{n}", minutes=n, entities=shared) for n in range(3)])
    incident_id = inc(alerts[0].incident_id)
    incident = INCIDENT.replace("pageInfo { hasNextPage endCursor }", PAGE_INFO)
    log = ACTIVITY_LOG.replace("pageInfo { hasNextPage endCursor }", PAGE_INFO)

    for query, read in ((incident, lambda d: d["incident"]["alerts"]), (log, lambda d: d["incident"]["activityLog"])):
        first = read(await admin(query, id=incident_id, first=2))
        assert page_info_of(first)[:2] == (False, True)
        second = read(await admin(query, id=incident_id, first=2, after=first["pageInfo"]["endCursor"]))
        assert page_info_of(second)[:2] == (True, False)
        assert len(second["edges"]) == 1
        past_the_end = read(await admin(query, id=incident_id, first=2, after=second["pageInfo"]["endCursor"]))
        assert page_info_of(past_the_end) == (True, False, None, None)


async def test_incidents_with_equal_activity_times_are_neither_skipped_nor_repeated(admin, ingest):
    alerts = await ingest(*[alert_in(f"same-{n}", f"same time {n}") for n in range(5)])
    assert await read_all_pages(admin, 2) == [inc(a.incident_id) for a in reversed(alerts)]


async def test_pages_are_stable_while_incidents_are_added(admin, ingest):
    original = await incidents_named(ingest, *[f"story {n}" for n in range(5)])
    added = []

    async def new_incidents_arrive():
        n = len(added)
        newer, older = await ingest(
            alert_in(f"newer-{n}", f"newer {n}", minutes=1000 + n),
            alert_in(f"older-{n}", f"older {n}", minutes=-1000 - n),
        )
        added.append((newer.incident_id, older.incident_id))

    seen = await read_all_pages(admin, 2, between_pages=new_incidents_arrive)

    # Incidents added ahead of the cursor are not seen; those behind it are; none twice.
    assert len(seen) == len(set(seen))
    older = [inc(o) for _, o in added]
    assert seen == [inc(i) for i in reversed(original)] + older
    assert (await queue(admin))["totalCount"] == len(original) + 2 * len(added)


@pytest.mark.parametrize("first", [0, -1, 101, 1000])
async def test_page_size_out_of_range_is_bad_user_input(admin, ingest, first):
    (a,) = await ingest(alert_in("a"))
    for query, variables in [
        (INCIDENTS, {"first": first}),
        (ALERTS, {"first": first}),
        (INCIDENT, {"id": inc(a.incident_id), "first": first}),
        (ACTIVITY_LOG, {"id": inc(a.incident_id), "first": first}),
    ]:
        errors = await admin.errors(query, **variables)
        assert codes(errors) == ["BAD_USER_INPUT"], errors
        assert "first" in errors[0]["message"]


async def test_page_sizes_of_1_and_100_are_accepted(admin, ingest):
    await incidents_named(ingest, "a", "b")
    assert len((await queue(admin, first=1))["edges"]) == 1
    assert len((await queue(admin, first=100))["edges"]) == 2


async def test_foreign_and_garbage_cursors_are_bad_user_input(admin, ingest):
    (a,) = await ingest(alert_in("a"))
    await ingest(alert_in("b"))
    incident_cursor = (await queue(admin, first=1))["pageInfo"]["endCursor"]
    alert_cursor = (await admin(ALERTS, first=1))["alerts"]["pageInfo"]["endCursor"]
    log = (await admin(ACTIVITY_LOG, id=inc(a.incident_id), first=1))["incident"]["activityLog"]
    entry_cursor = log["pageInfo"]["endCursor"]
    garbage = [
        "garbage",
        "",
        "%%%",
        "ééé",
        "null",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(json.dumps({"i": 1}).encode()).decode(),
        cursor(),
        cursor("i"),
        cursor("i", "yesterday", 1),
        cursor("i", "2026-11-20T12:00:00+00:00", "1"),
        cursor("i", "2026-11-20T12:00:00+00:00", True),
        cursor("i", "2026-11-20T12:00:00+00:00", 1, 2),
    ]

    for bad in [*garbage, alert_cursor, entry_cursor]:
        errors = await admin.errors(INCIDENTS, first=5, after=bad)
        assert codes(errors) == ["BAD_USER_INPUT"], (bad, errors)
    for bad in [*garbage, incident_cursor, entry_cursor]:
        errors = await admin.errors(ALERTS, first=5, after=bad)
        assert codes(errors) == ["BAD_USER_INPUT"], (bad, errors)
    for query, foreign in [
        (INCIDENT, [incident_cursor, entry_cursor]),
        (ACTIVITY_LOG, [incident_cursor, alert_cursor]),
    ]:
        for bad in [*garbage, *foreign]:
            errors = await admin.errors(query, id=inc(a.incident_id), first=5, after=bad)
            assert codes(errors) == ["BAD_USER_INPUT"], (bad, errors)


async def test_forged_cursor_with_an_id_beyond_bigint_is_bad_user_input(admin, ingest):
    await ingest(alert_in("a"))
    forged = cursor("i", "2026-11-20T12:00:00+00:00", 2**63)
    errors = await admin.errors(INCIDENTS, first=5, after=forged)
    assert codes(errors) == ["BAD_USER_INPUT"], errors


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-11-20T12:00:00"])
async def test_forged_cursor_with_an_impossible_time_is_bad_user_input(admin, ingest, moment):
    await ingest(alert_in("a"))
    errors = await admin.errors(INCIDENTS, first=5, after=cursor("i", moment, 1))
    assert codes(errors) == ["BAD_USER_INPUT"], errors


# --- single incidents and alerts --------------------------------------------------------------


async def test_incident_by_number(admin, ingest):
    (a,) = await ingest(alert_in("a", "Beacon on WS-1", severity="high"))
    query = "query($id: ID!) { incident(id: $id) { id number name severity status alertCount } }"
    data = await admin(query, id=inc(a.incident_id))
    assert data["incident"] == {
        "id": inc(a.incident_id),
        "number": a.incident_id,
        "name": "Beacon on WS-1",
        "severity": "HIGH",
        "status": "ACTIVE",
        "alertCount": 1,
    }
    by_number = query.replace("$id: ID!", "$n: Int!").replace("id: $id", "number: $n")
    assert await admin(by_number, n=a.incident_id) == data


async def test_unknown_incident_is_null(admin, ingest):
    await ingest(alert_in("a"))
    for unknown in (inc(424242), inc(int("9" * 18))):
        assert await admin("query($id: ID!) { incident(id: $id) { id } }", id=unknown) == {"incident": None}
    for unknown in (424242, 0):
        assert await admin("query($n: Int!) { incident(number: $n) { id } }", n=unknown) == {"incident": None}


@pytest.mark.parametrize(
    "malformed",
    [
        *["abc", "-1", "1.5", "", "1 2", "99999999999999999999"],
        *["inc_abc", "inc_-1", "inc_1.5", "inc_", "inc_1 2", "inc_99999999999999999999"],
        *["1", "#1", "inc_0", "inc_01", "alert_1", "log_1"],
    ],
)
async def test_malformed_incident_id_is_bad_user_input(admin, malformed):
    errors = await admin.errors("query($id: ID!) { incident(id: $id) { id } }", id=malformed)
    assert codes(errors) == ["BAD_USER_INPUT"]


async def test_alert_by_id(admin, ingest):
    (a,) = await ingest(
        alert_in(
            "edr-1",
            "Credential dumping on WS-9",
            severity="high",
            category="CredentialAccess",
            scope="finance",
            entities=[("device", "WS-9"), ("user", "Alice")],
        )
    )
    data = await admin(ALERT, id=alert_id(a.id))
    assert data["alert"] == {
        "id": alert_id(a.id),
        "externalId": "edr-1",
        "title": "Credential dumping on WS-9",
        "severity": "HIGH",
        "status": "NEW",
        "category": "CredentialAccess",
        "scope": "finance",
        "detectedAt": "2026-11-20T12:00:00+00:00",
        "incident": {"id": inc(a.incident_id), "name": "Credential dumping on WS-9"},
        "entities": [{"kind": "DEVICE", "value": "WS-9"}, {"kind": "USER", "value": "Alice"}],
    }


async def test_unknown_alert_is_null_and_malformed_id_is_bad_user_input(admin, ingest):
    await ingest(alert_in("a"))
    assert await admin(ALERT, id=alert_id(424242)) == {"alert": None}
    for malformed in ("alert-1", "1", "alert_01", inc(1)):
        assert codes(await admin.errors(ALERT, id=malformed)) == ["BAD_USER_INPUT"]


# --- alerts ---------------------------------------------------------------------------------


async def test_alerts_are_most_recently_detected_first_and_filtered(admin, ingest, pool):
    shared = [("device", "WS-5")]
    a1, a2, a3 = await ingest(
        alert_in("a1", "PowerShell download cradle on WS-5", severity="high", minutes=1, entities=shared),
        alert_in("a2", "Scheduled task created on WS-5", severity="low", minutes=2, entities=shared),
        alert_in("a3", "PowerShell encoded command on WS-8", severity="medium", minutes=3),
    )
    await pool.execute("UPDATE alerts SET status = 'resolved' WHERE id = $1", a2.id)
    assert a1.incident_id == a2.incident_id != a3.incident_id

    assert await alert_titles(admin) == [a3.title, a2.title, a1.title]
    assert await alert_titles(admin, incidentId=inc(a1.incident_id)) == [a2.title, a1.title]
    assert await alert_titles(admin, status=["RESOLVED"]) == [a2.title]
    assert await alert_titles(admin, status=["NEW", "IN_PROGRESS"]) == [a3.title, a1.title]
    assert await alert_titles(admin, severity=["HIGH", "MEDIUM"]) == [a3.title, a1.title]
    assert await alert_titles(admin, search="powershell") == [a3.title, a1.title]
    assert await alert_titles(admin, search="ws-5 POWER") == [a1.title]
    assert await alert_titles(admin, search="powershell", incidentId=inc(a1.incident_id)) == [a1.title]
    data = await admin(ALERTS, filter={"severity": ["HIGH", "MEDIUM"]}, first=1)
    assert data["alerts"]["totalCount"] == 2
    assert data["alerts"]["pageInfo"]["hasNextPage"] is True


async def test_alerts_of_an_unknown_incident_are_none_and_a_malformed_one_is_bad_user_input(admin, ingest):
    await ingest(alert_in("a"))
    assert await alert_titles(admin, incidentId=inc(424242)) == []
    for malformed in ("four", "inc_four", "1", alert_id(1)):
        errors = await admin.errors(ALERTS, filter={"incidentId": malformed})
        assert codes(errors) == ["BAD_USER_INPUT"]


async def test_alert_pages_cover_every_alert_once(admin, ingest):
    alerts = await ingest(*[alert_in(f"a{n}", minutes=n % 3) for n in range(8)])
    expected = [alert_id(a.id) for a in sorted(alerts, key=lambda a: (a.detected_at, a.id), reverse=True)]
    seen, after = [], None
    while True:
        page = (await admin(ALERTS, first=3, after=after))["alerts"]
        assert page["totalCount"] == 8
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected


async def test_incident_alerts_page_newest_first(admin, ingest):
    shared = [("device", "WS-3")]
    alerts = await ingest(*[alert_in(f"a{n}", f"step {n}", minutes=n, entities=shared) for n in range(5)])
    incident_id = inc(alerts[0].incident_id)

    seen, after = [], None
    while True:
        data = (await admin(INCIDENT, id=incident_id, first=2, after=after))["incident"]
        assert data["alertCount"] == 5
        assert data["alerts"]["totalCount"] == 5
        seen += [e["node"]["title"] for e in data["alerts"]["edges"]]
        if not data["alerts"]["pageInfo"]["hasNextPage"]:
            break
        after = data["alerts"]["pageInfo"]["endCursor"]

    assert seen == ["step 4", "step 3", "step 2", "step 1", "step 0"]


async def test_activity_log_pages_newest_first(admin, ingest):
    shared = [("device", "WS-3")]
    alerts = await ingest(*[alert_in(f"a{n}", minutes=n, entities=shared) for n in range(4)])
    incident_id = inc(alerts[0].incident_id)
    later = await ingest(*[alert_in(f"b{n}", minutes=10 + n, entities=shared) for n in range(3)])

    entries, after = [], None
    while True:
        log = (await admin(ACTIVITY_LOG, id=incident_id, first=2, after=after))["incident"]["activityLog"]
        entries += [e["node"] for e in log["edges"]]
        if not log["pageInfo"]["hasNextPage"]:
            break
        after = log["pageInfo"]["endCursor"]

    assert log["totalCount"] == len(entries)
    ids = [parse_id(e["id"], LOG_ENTRY) for e in entries]
    assert [e["id"] for e in entries] == [log_id(n) for n in ids]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert [e["createdAt"] for e in entries] == sorted((e["createdAt"] for e in entries), reverse=True)
    assert entries[-1]["kind"] == "INCIDENT_CREATED"
    # The newest entries are the later batch's, its last alert first.
    assert [(e["kind"], e["alert"]["id"]) for e in entries[:3]] == [
        ("ALERT_CORRELATED", alert_id(a.id)) for a in reversed(later)
    ]


# --- the index ------------------------------------------------------------------------------


class RecordingConnection:
    """Runs statements on a real connection and keeps the last one, to EXPLAIN it afterwards."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple]] = []

    async def fetch(self, sql, *args):
        self.statements.append((sql, args))
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql, *args):
        self.statements.append((sql, args))
        return await self.conn.fetchrow(sql, *args)

    async def fetchval(self, sql, *args):
        self.statements.append((sql, args))
        return await self.conn.fetchval(sql, *args)


def index_conditions(plan: dict) -> str:
    found = plan.get("Index Cond", "")
    for child in plan.get("Plans", []):
        found += index_conditions(child)
    return found


def index_names(plan: dict) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= index_names(child)
    return found


@pytest.mark.parametrize(
    "viewer",
    [
        Viewer(id=1, name="everything", can_view_incidents=True, can_ingest=False, grants={"*": "read"}),
        Viewer(
            id=2, name="scoped", can_view_incidents=True, can_ingest=False, grants={"default": "read", "hr": "read"}
        ),
    ],
)
@pytest.mark.parametrize("sampled", ["common", "rare"])
async def test_typeahead_for_a_rare_word_can_use_the_trigram_index(pool, viewer, sampled, monkeypatch):
    """`sampled`: what the sample's names say of the word: in all of them (the RECENT step runs),
    or its trigram "bar" in none (it does not, and the names' index looks up "bar" alone)."""
    choose_way(monkeypatch, "steps")  # as at a million incidents
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO incidents (name, severity, last_activity_at, alert_count, alert_scopes)
            SELECT 'Suspicious PowerShell command line on WS-' || g || ' by user' || (g % 97),
                   'medium', now() - g * interval '1 minute', 1, ARRAY['default']
              FROM generate_series(1, 5000) g
            """
        )
        await conn.execute(
            "INSERT INTO incidents (name, severity, last_activity_at, alert_count, alert_scopes)"
            " VALUES ('Zanzibar exfiltration on WS-77', 'high', now() - interval '3 days', 1, ARRAY['default'])"
        )
        # Their evidence, as 0024's triggers would count it for an alert on each incident's host.
        await conn.execute(
            "INSERT INTO incident_evidence (incident_id, value_key, kind, scope, entities, value)"
            " SELECT i.id, 'ws-' || i.id, 'device', 'default', 1, 'WS-' || i.id FROM incidents i"
        )
        # Rows inserted after the index was built wait in GIN's pending list until (auto)vacuum
        # moves them into the index; until then the planner prices the index far too high.
        await conn.execute("SELECT gin_clean_pending_list('incidents_name_search')")
        await conn.execute("SELECT gin_clean_pending_list('incident_evidence_value_search')")
        await conn.execute("ANALYZE incidents, incident_evidence")
        await pin_sample_names(monkeypatch, conn, ["zanzibar" if sampled == "common" else "zanziba"] * 10_000)
        # At 5,000 rows the planner may rightly prefer a sequential scan of so small a table;
        # the point here is that the statement as built (one ILIKE per word, nothing wrapped
        # around the name) is one the trigram index can serve, as it must at a million incidents.
        await conn.execute("SET LOCAL enable_seqscan = off")
        recorder = RecordingConnection(conn)

        page = await incidents.list_incidents(
            conn=recorder, viewer=viewer, flt=incidents.IncidentFilter(search="zanzibar"), first=20, after=None
        )

        assert [i.name for i in page.items] == ["Zanzibar exfiltration on WS-77"]
        # The newest incidents first, then those of the last days (unless the sample says the
        # word is rare), then all: the last two through the trigram index, the second with the
        # day of last activity in its condition. Then the evidence matches (issue 16), through
        # the trigram index of the incidents' evidence values.
        # (what a process reads once in a while, whenever it is due, left out: the cursors' key,
        # the evidence's sample)
        steps = search_steps(recorder)
        if sampled == "rare":
            _near, everything, *evidence_steps = steps
            assert "activity_day" not in everything[0] and "%bar%" in everything[1]
            recent = None
        else:
            _near, recent, everything, *evidence_steps = steps
            assert "activity_day" in recent[0] and "%zanzibar%" in everything[1]
        for sql, args in (recent, everything) if recent else (everything,):
            plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))[0]["Plan"]
            assert "incidents_name_search" in index_names(plan), json.dumps(plan, indent=1)
        sql, args = evidence_steps[-1]
        plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))[0]["Plan"]
        assert "incident_evidence_value_search" in index_names(plan), json.dumps(plan, indent=1)
        if recent:
            plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {recent[0]}", *recent[1]))[0]["Plan"]
            assert "last_activity_at" in index_conditions(plan), json.dumps(plan, indent=1)


async def zanzibar_incidents(conn, older_than: int = 0) -> None:
    """3,000 incidents, one every 10 minutes from now back, every 50th of those beyond the newest
    `older_than` named "... Zanzibar"."""
    await conn.execute(
        """
        INSERT INTO incidents (name, severity, last_activity_at, alert_count, alert_scopes)
        SELECT concat_ws(' ', 'Suspicious PowerShell on WS-' || g, CASE WHEN g % 50 = 0 AND g > $1 THEN 'Zanzibar' END),
               'medium', now() - g * interval '10 minutes', 1, ARRAY['default']
          FROM generate_series(1, 3000) g
        """,
        older_than,
    )
    await conn.execute("ANALYZE incidents")


@pytest.mark.parametrize("recent", [None, 5, 500])
async def test_the_last_days_are_searched_first_only_unless_the_sample_says_they_hold_too_few(
    pool, recent, monkeypatch
):
    """The RECENT step (the names' index asked for the last 7 days) is skipped when the sample's
    names say it finds fewer than a page: "zanzibar" is in 20 of their 5,000 (too many rows for the
    index to skip RECENT by its candidates alone), and 5 of those 5,000 incidents were active in
    the last 7 days (of a million incidents, as choose_way has it: 22 x 7 / 5,000² x 10⁶, about 6,
    with the slack). With 500 of them active (about 440 expected), or that share not known, it runs
    (and finds nothing: only older incidents hold the word). The plain rule's pages either way."""
    choose_way(monkeypatch, "steps")  # as at a million incidents
    viewer = Viewer(id=1, name="everything", can_view_incidents=True, can_ingest=False, grants={"*": "read"})
    async with pool.acquire() as conn:
        await zanzibar_incidents(conn, older_than=1200)
        await pin_sample_names(monkeypatch, conn, ["zanzibar"] * 20 + ["other"] * 4_980, recent)
        await evidence.sample(conn)  # (read, as the server's task reads it before the searches)
        expected = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM incidents WHERE name ILIKE '%zanzibar%' ORDER BY last_activity_at DESC, id DESC"
            )
        ]
        flt = incidents.IncidentFilter(search="zanzibar")
        # The first page: RECENT skipped only if the sample says so.
        recorder = RecordingConnection(conn)
        first = await incidents.list_incidents(conn=recorder, viewer=viewer, flt=flt, first=10)
        assert [i.id for i in first.items] == expected[:10]
        steps = [sql for sql, _ in search_steps(recorder)]
        assert any("activity_day" in sql for sql in steps) == (recent != 5)
        assert any("interval '0'" in sql and "activity_day" not in sql for sql in steps)
        # The next page, forward from a cursor, and the last page, backward: their days are not
        # the last days up to now, which the sample counted, so RECENT runs there.
        for paging, want in (
            ({"first": 10, "after": first.cursors[-1]}, expected[10:20]),
            ({"last": 10}, expected[-10:]),
        ):
            recorder = RecordingConnection(conn)
            page = await incidents.list_incidents(conn=recorder, viewer=viewer, flt=flt, **paging)
            assert [i.id for i in page.items] == want, paging
            assert any("activity_day" in sql for sql, _ in search_steps(recorder)), paging


@pytest.mark.parametrize("sampled", ["common", "rare"])
async def test_the_newest_names_are_walked_only_when_the_sample_says_they_hold_a_page(pool, sampled, monkeypatch):
    """The NEAR step (the newest 1,000 names) runs when the sample's names say it finds a page
    ("zanzibar" in 2% of them), and is skipped when they say it finds too few (in none): either
    way the plain rule's pages, for one word and for several."""
    choose_way(monkeypatch, "steps")  # as at a million incidents
    viewer = Viewer(id=1, name="everything", can_view_incidents=True, can_ingest=False, grants={"*": "read"})
    async with pool.acquire() as conn:
        await zanzibar_incidents(conn)
        held = 100 if sampled == "common" else 0
        await pin_sample_names(monkeypatch, conn, ["zanzibar on ws-1"] * held + ["other"] * (5_000 - held))
        await evidence.sample(conn)  # (read, as the server's task reads it before the searches)
        for text in ("zanzibar", "zanzibar ws-1"):
            words = text.split()
            expected = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM incidents WHERE "
                    + " AND ".join(f"name ILIKE ${n + 1}" for n in range(len(words)))
                    + " ORDER BY last_activity_at DESC, id DESC",
                    *[f"%{w}%" for w in words],
                )
            ]
            recorder = RecordingConnection(conn)
            found: list[int] = []
            after = None
            for _ in range(2):
                page = await incidents.list_incidents(
                    conn=recorder, viewer=viewer, flt=incidents.IncidentFilter(search=text), first=10, after=after
                )
                found += [i.id for i in page.items]
                if not page.has_next:
                    break
                after = page.cursors[-1]
            assert found == expected[:20], text
            near = [sql for sql, _ in recorder.statements if is_near_step(sql)]
            assert bool(near) == (sampled == "common"), text


async def test_a_search_too_long_or_with_too_many_words_is_refused_not_truncated(admin, ingest):
    await ingest(alert_in("a"))
    for search, limit in (("w" * 201, "200 characters"), (" ".join(f"word{i}" for i in range(9)), "8 words")):
        errors = await admin.errors(INCIDENTS, first=5, filter={"search": search})
        assert codes(errors) == ["BAD_USER_INPUT"], errors
        assert limit in errors[0]["message"]
        assert errors[0]["extensions"]["field"] == "filter.search"


async def test_an_empty_incident_id_filter_is_bad_input_not_no_filter(admin, ingest):
    await ingest(alert_in("a"))
    errors = await admin.errors('query { alerts(filter: {incidentId: ""}) { totalCount } }')
    assert codes(errors) == ["BAD_USER_INPUT"]


# --- the typeahead's steps ------------------------------------------------------------------

# 3,000 incidents over 21 days, newest first by number: words in most names, in some, in few,
# hosts with punctuation, and emails, so that every step of the search (the newest 1,000, the
# last 7 days, everything) has to answer some of these.
STEPPED_SEARCHES = [
    "on",
    "lateral",
    "ws-12",
    "ws-2999",
    "ws-29",
    "fs-1",
    "fs-2",
    "user5@contoso",
    "user50@fabrikam.com",
    "powershell ws-77",
    "rare ws-3",
    "c2 ws-1",
    "c2",
    "s-1",
    "rare",
    "zanzibar",
    "alpha beta",
    "nothing-like-this",
    "hq-10143",
    "-10143",
    "q-1014",
    "hq-12",
    "lateral hq-11",
    "lateral ws-2",  # several parts in enough names that the NEAR step runs, counting them
    "ws-299",  # (looked up by its pieces, "ws-" and "299": search.pieces)
    "lateral ws-2999",
    "hq-10143 c2",
]


@pytest.mark.parametrize("way", ["steps", "planner", "trigrams"])
@pytest.mark.parametrize("with_alerts", [False, True])
async def test_each_step_of_the_search_answers_what_the_plain_rule_answers(pool, with_alerts, way, monkeypatch):
    """`trigrams`: the steps, with a sample of names in which each part's last trigram is rare
    (search.looked_up_by_trigram), so that the names' index looks up that trigram alone."""
    choose_way(monkeypatch, "planner" if way == "planner" else "steps")
    if way == "trigrams":
        parts = {p for text in STEPPED_SEARCHES for w in search_rules.words(text) for p in search_rules.index_parts(w)}
        # (enough names that a trigram none holds is one of at most 500 candidates: RECENT skipped)
        names = [p[:-1] for p in parts if search_rules.trigrams(p)] * 400
        names += ["lateral ws-2"] * 400  # (held whole: the NEAR step runs for it, counting its parts)
        names += ["fs-2999"] * 400  # ("2999" common, "ws-2999" not: looked up by its pieces)
        monkeypatch.setattr(evidence, "_sample", Periodic(300.0, fake_read(evidence.Sample.of([], 1.0, names))))
    viewer = Viewer(id=1, name="everything", can_view_incidents=True, can_ingest=False, grants={"*": "read"})
    await pool.execute(
        """
        INSERT INTO incidents (name, severity, last_activity_at, alert_count, alert_scopes)
        SELECT concat_ws(' ',
                   CASE WHEN g % 5 = 0 THEN 'Lateral movement' ELSE 'Suspicious PowerShell' END,
                   'on', CASE WHEN g % 7 = 0 THEN 'FS-' ELSE 'WS-' END || g,
                   CASE WHEN g % 3 = 0 THEN 'by user' || (g % 97) || '@' || (ARRAY['contoso.com', 'fabrikam.com'])[g % 2 + 1] END,
                   CASE WHEN g % 211 = 0 THEN 'rare' END, CASE WHEN g = 2500 THEN 'Zanzibar alpha beta' END,
                   CASE WHEN g % 13 = 0 THEN 'C2 beacon' END, CASE WHEN g % 11 = 0 THEN 'HQ-' || (10000 + g) END),
               'medium', now() - g * interval '10 minutes', 1, ARRAY['default']
          FROM generate_series(1, 3000) g
        """
    )
    # Some of them with alerts: the typeahead can read each one's first alerts in its statements.
    await pool.execute(
        """
        INSERT INTO alerts (external_id, title, severity, category, scope, detected_at, incident_id)
        SELECT 'x' || i.id || '-' || n, i.name, 'medium', 'Execution', 'default', i.last_activity_at, i.id
          FROM incidents i, generate_series(1, 3) n WHERE i.id % 2 = 0
        """
    )
    await pool.execute("ANALYZE incidents")
    plain = "SELECT id FROM incidents WHERE {words} ORDER BY last_activity_at DESC, id DESC"
    async with pool.acquire() as conn:
        recorder = RecordingConnection(conn)
        for text in STEPPED_SEARCHES:
            words = text.split()
            expected = [
                r["id"]
                for r in await pool.fetch(
                    plain.format(words=" AND ".join(f"name ILIKE ${n + 1}" for n in range(len(words)))),
                    *[f"%{w}%" for w in words],
                )
            ]
            found: list[int] = []
            after = None
            for _ in range(3):  # three pages of 10: the first 30 matches, in order
                flt = incidents.IncidentFilter(search=text)
                if with_alerts:
                    page, alert_pages = await incidents.list_incidents_with_alerts(
                        conn=recorder, viewer=viewer, flt=flt, first=10, after=after, alerts_first=2
                    )
                    assert [len(alert_pages[i.id].items) for i in page.items] == [
                        2 if i.id % 2 == 0 else 0 for i in page.items
                    ]
                else:
                    page = await incidents.list_incidents(conn=recorder, viewer=viewer, flt=flt, first=10, after=after)
                found += [i.id for i in page.items]
                if not page.has_next:
                    break
                after = page.cursors[-1]
            assert found == expected[:30], text
    statements = [sql for sql, _ in recorder.statements]
    if way == "planner":
        # The plain rule's statement (after the newest 1,000 for several words), no other step;
        # the evidence step (incident_evidence) has ways of its own.
        statements = [sql for sql in statements if "incident_evidence" not in sql]
        assert not any("activity_day" in sql or "interval '0'" in sql or "part_counts" in sql for sql in statements)
        return
    if way == "trigrams":  # (words that the newest 1,000 do not answer) "zanzibar" by "bar", "hq-10143" by "143"
        looked_up = {a for _, args in recorder.statements for a in args if isinstance(a, str)}
        assert {"%bar%", "%143%", "%ws-%"} <= looked_up  # ("ws-299" by its pieces, "ws-" and "299")
        # and without the RECENT step for them, which the hosts' whole words still take
        by_trigram = [sql for sql, args in recorder.statements if "%bar%" in args or "%143%" in args]
        assert by_trigram and not any("activity_day" in sql for sql in by_trigram)
    # Every step answered some of them: the newest 1,000, the sample of which words to look up,
    # the last 7 days, and everything.
    assert any("LIMIT 1000" in sql for sql in statements)
    assert any("part_counts" in sql for sql in statements)
    assert any("activity_day" in sql for sql in statements)
    assert any("interval '0'" in sql and "activity_day" not in sql for sql in statements)


def is_near_step(sql: str) -> bool:
    """The NEAR step's statement (counting the parts or not): the newest 1,000 incidents' names,
    not an evidence walk of as many (incident_evidence) nor the count of a region."""
    return "LIMIT 1000" in sql and "incident_evidence" not in sql and "SELECT 1 FROM incidents" not in sql


def fake_read(value):
    async def read(conn):
        return value

    return read


async def pin_sample_names(monkeypatch, conn, names: list[str], recent: int | None = None) -> None:
    """The evidence sample of this database, read now and kept, with these names' trigrams as the
    sampled names' (what the name steps choose their way by), `recent` of them active in the
    last 7 days (None: not known)."""
    sample = await evidence._read_sample(conn)
    sample.names = evidence.Trigrams.of(names)
    sample.names.recent = recent
    monkeypatch.setattr(evidence, "_sample", Periodic(300.0, fake_read(sample)))


# What a process reads once in a while, whenever it is due: the cursors' key, the table's size,
# the evidence's sample.
PERIODIC_READS = ("cursor_sealing_key", "pg_class", "TABLESAMPLE")


def search_steps(recorder: RecordingConnection) -> list[tuple[str, tuple]]:
    """The statements a search sent, without the once-in-a-while reads (PERIODIC_READS)."""
    return [(sql, args) for sql, args in recorder.statements if not any(p in sql for p in PERIODIC_READS)]


def choose_way(monkeypatch, way: str) -> None:
    """The typeahead's steps, or the planner's one statement (as at a small table), whatever the
    table's size (incidents.PLANNER_CHOOSES_BELOW)."""
    monkeypatch.setattr(incidents, "PLANNER_CHOOSES_BELOW", 0 if way == "steps" else 10**12)
    if way == "steps":  # and the estimates of rows from the sample's shares, as at a million incidents
        monkeypatch.setattr(incidents, "_table_rows", Periodic(30.0, fake_read(1_000_000)))


async def test_a_field_cancelled_by_its_siblings_error_does_not_fail_the_others_waiting_on_the_same_load(
    admin, ingest, pool
):
    """graphql-core cancels the fields under a parent an error nulled; a load they shared with
    fields elsewhere in the document (incident 1, asked for by both) still answers those."""
    a, b = await ingest(alert_in("a", entities=[("device", "ws-1")]), alert_in("b", entities=[("device", "ws-2")]))
    await redirect_by_hand(pool, b.incident_id, a.incident_id)
    query = (
        f'{{ k1: incident(id: "{inc(b.incident_id)}") {{ redirectIncident {{ id }} activityLog(first: 1, after: "bad") {{ totalCount }} }}'
        f' alert(id: "{alert_id(a.id)}") {{ incident {{ id }} }} }}'
    )
    response = await admin.post(query)
    body = response.json()
    assert response.status_code == 200
    assert body["data"] == {"k1": None, "alert": {"incident": {"id": inc(a.incident_id)}}}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


async def test_a_host_whose_number_many_names_share_is_looked_up_by_its_pieces_in_the_names(monkeypatch):
    # At a million incidents: "85218" in 2% of the sampled names (the hosts ws-, lt-, srv- and
    # web-85218), "fs-85218" in one; "4821" in one name, as its host. The names' index looks up
    # "fs-85218" by its pieces, "fs-" with the run (intersecting the prefix's list costs less
    # than checking 20,000 names), and "ws-4821" by its run; "lt-527", whose only long run is
    # short, by its pieces (never its run's padded trigrams), "fs-54", without a long run, whole.
    choose_way(monkeypatch, "steps")
    names = [f"malware on {('ws', 'lt', 'srv', 'web')[n % 4]}-85218" for n in range(100)]
    names += ["malware on fs-85218", "logon from ws-4821"] + [f"incident {n}" for n in range(4_899) if n != 4821]
    sampled = evidence.Trigrams.of(names)
    assert sampled.holding(["85218"]) == 101 and sampled.holding(["fs-85218"]) == 1
    assert sampled.holding(["malware", "fs-"]) == 1 and sampled.holding(["nowhere"]) == 0
    assert await incidents._name_parts(None, "fs-85218", sampled) == ([], ["fs-", "85218"])
    assert await incidents._name_parts(None, "ws-4821", sampled) == (["4821"], [])
    assert await incidents._name_parts(None, "lt-527", sampled) == ([], ["lt-", "527"])
    assert await incidents._name_parts(None, "fs-54", sampled) == (["fs-54"], [])
    # Without the sample's names (before its first read), the runs.
    assert await incidents._name_parts(None, "fs-85218", None) == (["85218"], [])
    assert evidence.Trigrams("", [], 0).holding(["85218"]) is None


def test_the_sampled_names_held_by_a_common_word_are_extrapolated_from_the_part_read():
    # (in an order that has nothing to do with what they hold, as SAMPLE gives them)
    names = ["windows host"] * 4_000 + ["linux host"] * 4_000
    random.Random(5).shuffle(names)
    sampled = evidence.Trigrams.of(names)
    assert sampled.holding(["windows"]) == pytest.approx(4_000, rel=0.15)
    assert sampled.holding(["host"]) == pytest.approx(8_000, rel=0.01)
