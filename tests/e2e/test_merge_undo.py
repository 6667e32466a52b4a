"""Merging incidents from the queue, undoing moves and merges, and a move's page, in a real browser."""

from __future__ import annotations

import json
import re

from playwright.async_api import expect

from tests.conftest import alert_id, alert_in, inc

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
LINK = """mutation Link($alertIds: [ID!]!, $target: ID!, $comment: String!) {
  linkAlerts(alertIds: $alertIds, target: { existingIncidentId: $target }, comment: $comment) {
    move { id number }
    errors { code message }
  }
}"""


async def state(pool) -> tuple:
    """Where every alert is, every incident's status and redirect, the log and the moves: what a
    refused merge or undo must leave alone."""
    alerts = await pool.fetch("SELECT id, incident_id FROM alerts ORDER BY id")
    incidents = await pool.fetch(
        "SELECT id, status::text, redirect_incident_id, severity::text FROM incidents ORDER BY id"
    )
    log = await pool.fetch("SELECT id, incident_id, kind::text FROM activity_log ORDER BY id")
    moves = await pool.fetch("SELECT id, kind::text, reverts_move_id FROM moves ORDER BY id")
    return tuple([tuple(r) for r in rows] for rows in (alerts, incidents, log, moves))


async def where_alerts_are(pool) -> dict[int, int]:
    return {r["id"]: r["incident_id"] for r in await pool.fetch("SELECT id, incident_id FROM alerts")}


async def status_of(pool, incident: int) -> tuple[str, int | None]:
    row = await pool.fetchrow("SELECT status::text, redirect_incident_id FROM incidents WHERE id = $1", incident)
    return row["status"], row["redirect_incident_id"]


async def link(api, alerts, target: int, comment: str) -> int:
    """Moves `alerts` to incident `target` through the API; returns the move's number."""
    variables = {"alertIds": [alert_id(a.id) for a in alerts], "target": inc(target), "comment": comment}
    payload = (await api(LINK, **variables))["linkAlerts"]
    assert payload["errors"] == [], payload
    return payload["move"]["number"]


def requests_of(page, operation: str) -> list[dict]:
    """The variables of every request for `operation` the page sends, as they are sent."""
    sent: list[dict] = []

    def seen(request):
        if request.url.endswith("/graphql") and request.method == "POST":
            body = json.loads(request.post_data)
            if re.search(rf"(?:query|mutation) {operation}\b", body["query"]):
                sent.append(body["variables"])

    page.on("request", seen)
    return sent


async def lose_first_answer(page, operation: str) -> None:
    """The first `operation` reaches the server and is applied, but its answer never comes back."""
    lost = []

    async def handle(route):
        body = json.loads(route.request.post_data or "{}")
        if not lost and re.search(rf"mutation {operation}\b", body.get("query", "")):
            lost.append(await route.fetch())
            await route.abort("connectionreset")
        else:
            await route.fallback()

    await page.route("**/graphql", handle)


def forget_lost_answers(console) -> None:
    """The browser reports the cut connection as a console error: expected here, and only that."""
    console.problems[:] = [p for p in console.problems if "ERR_CONNECTION_RESET" not in p]


async def test_merge_three_incidents_from_the_queue_into_the_one_with_most_alerts(console, make_user, ingest, pool):
    # given three incidents, the second with two alerts, and one that stays out of it
    [phish] = await ingest(alert_in("phish", "Phishing email delivered to erin.lee@contoso.com", minutes=30))
    beacon, c2 = await ingest(
        alert_in("beacon", "Beacon to 185.220.101.7 from WS-1001", minutes=40, entities=[("device", "WS-1001")]),
        alert_in("c2", "Outbound C2 traffic from WS-1001", minutes=41, entities=[("device", "WS-1001")]),
    )
    [spray] = await ingest(alert_in("spray", "Password spray against ivan.king", minutes=20))
    [bystander] = await ingest(alert_in("other", "Suspicious PowerShell command line on WS-1234", minutes=5))
    assert beacon.incident_id == c2.incident_id
    target = beacon.incident_id
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))
    sent = requests_of(page, "MergeIncidents")

    # when the analyst checks three incidents in the queue and opens the merge panel
    for alert in (phish, beacon, spray):
        await page.get_by_role("checkbox", name=f"Select incident {alert.incident_id}: {alert.title}").check()
    await page.get_by_role("button", name="Merge 3 incidents").click()
    panel = page.get_by_role("dialog", name="Merge incidents")
    await expect(panel).to_be_visible()

    # then the target is the incident with the most alerts, focused, and the panel says what happens
    default = panel.get_by_role("radio", name=f"#{target} {beacon.title}")
    await expect(default).to_be_checked()
    await expect(default).to_be_focused()
    sources = sorted([phish.incident_id, spray.incident_id])
    await expect(panel.locator("#merge-outcome")).to_have_text(
        f"#{sources[0]}, #{sources[1]} will be marked Redirected to #{target}, and their 2 alerts will move there."
    )

    # and Save without a comment says so at the comment, sending nothing
    await panel.get_by_role("button", name="Save").click()
    comment = panel.get_by_label("Comment")
    await expect(panel.get_by_text("A comment saying why is required.")).to_be_visible()
    await expect(comment).to_have_attribute("aria-invalid", "true")
    await expect(comment).to_be_focused()
    assert sent == []

    # when they give reasons and a comment, and save
    await panel.get_by_label("Same actor").check()
    await panel.get_by_label("Same campaign").check()
    await comment.fill("One operator: the phish delivered the beacon, the spray came from its C2")
    await panel.get_by_role("button", name="Save").click()

    # then the target opens on its log, with the confirmation, its Undo and the new entries
    await expect(panel).to_be_hidden()
    await expect(page).to_have_url(re.compile(rf"#/incidents/{target}/log$"))
    move = await pool.fetchrow("SELECT id, kind::text, reasons::text[] AS reasons, comment FROM moves")
    assert move["kind"] == "merge"
    assert sorted(r.upper() for r in move["reasons"]) == ["SAME_ACTOR", "SAME_CAMPAIGN"]
    confirmation = page.locator(".confirmation")
    await expect(confirmation).to_contain_text(f"Merged 2 incidents into incident #{target}.")
    await expect(confirmation.get_by_role("button", name=f"Undo merge #{move['id']}")).to_be_visible()
    merged_in = page.locator('.entry.new[data-kind="INCIDENT_MERGED"]')
    await expect(merged_in).to_have_count(2)
    for entry in await merged_in.all():
        await expect(entry.get_by_role("link", name=f"Merge #{move['id']}")).to_have_attribute(
            "href", f"#/moves/{move['id']}"
        )

    # and in the database every alert of the sources is in the target, and the sources redirect to it
    assert await where_alerts_are(pool) == {
        phish.id: target,
        beacon.id: target,
        c2.id: target,
        spray.id: target,
        bystander.id: bystander.incident_id,
    }
    for source in sources:
        assert await status_of(pool, source) == ("redirected", target)
    [request] = sent
    assert request["targetIncidentId"] == inc(target)  # the target shown is the target sent
    assert sorted(request["incidentIds"]) == sorted(inc(n) for n in (target, *sources))
    assert UUID.match(request["idempotencyKey"])

    # and a source's page says where it went, and the queue no longer lets it be merged
    await page.goto(f"{console.base}/#/incidents/{phish.incident_id}")
    await expect(page.locator(".meta")).to_contain_text("Redirected · 0 alerts")
    await expect(page.locator(".meta").get_by_role("link")).to_have_text(f"#{target} {beacon.title}")
    await page.get_by_role("link", name="Incidents", exact=True).first.click()
    await expect(
        page.get_by_role(
            "checkbox", name=f"Incident {phish.incident_id} was merged into another and cannot be merged: {phish.title}"
        )
    ).to_be_disabled()

    # and the merge's page lists its reasons and the alerts it moved
    await page.goto(f"{console.base}/#/moves/{move['id']}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Merge #{move['id']}")
    await expect(page.locator(".details dl")).to_contain_text("Same actor, Same campaign")
    await expect(page.locator("table.items > tbody > tr")).to_have_count(2)


async def test_merge_two_incidents_into_the_one_picked_with_the_keyboard_alone(console, make_user, ingest, pool):
    # given an incident of two alerts, and a newer one of one alert
    first, second = await ingest(
        alert_in("a", "Credential dumping via LSASS access on WS-4821", entities=[("device", "WS-4821")]),
        alert_in("b", "Pass-the-hash activity from WS-4821", minutes=5, entities=[("device", "WS-4821")]),
    )
    [newer] = await ingest(alert_in("n", "Pass-the-hash activity from WS-4822", minutes=9))
    assert first.incident_id == second.incident_id
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))
    sent = requests_of(page, "MergeIncidents")

    # when the analyst checks both with the keyboard and opens the panel
    for alert in (first, newer):
        await page.get_by_role("checkbox", name=f"Select incident {alert.incident_id}: {alert.title}").press("Space")
    await page.get_by_role("button", name="Merge 2 incidents").press("Enter")
    panel = page.get_by_role("dialog", name="Merge incidents")
    default = panel.get_by_role("radio", name=f"#{first.incident_id} {first.title}")
    await expect(default).to_be_focused()
    await expect(default).to_be_checked()

    # and picks the newer incident as the target, a reason and a comment, then saves, from the keyboard
    await page.keyboard.press("ArrowDown")
    picked = panel.get_by_role("radio", name=f"#{newer.incident_id} {newer.title}")
    await expect(picked).to_be_checked()
    await expect(panel.locator("#merge-outcome")).to_have_text(
        f"#{first.incident_id} will be marked Redirected to #{newer.incident_id}, and its 2 alerts will move there."
    )
    await page.keyboard.press("Tab")
    await expect(panel.get_by_label("Duplicate")).to_be_focused()
    await page.keyboard.press("Space")
    for _ in range(5):
        await page.keyboard.press("Tab")
    await expect(panel.get_by_label("Comment")).to_be_focused()
    await page.keyboard.type("The same pass-the-hash story")
    await page.keyboard.press("Tab")
    await expect(panel.get_by_role("button", name="Save")).to_be_focused()
    await page.keyboard.press("Enter")

    # then the picked incident holds all three alerts, and the other redirects to it
    await expect(page).to_have_url(re.compile(rf"#/incidents/{newer.incident_id}/log$"))
    await expect(page.locator(".confirmation")).to_contain_text(
        f"Merged 1 incident into incident #{newer.incident_id}."
    )
    assert set((await where_alerts_are(pool)).values()) == {newer.incident_id}
    assert await status_of(pool, first.incident_id) == ("redirected", newer.incident_id)
    assert [r["targetIncidentId"] for r in sent] == [inc(newer.incident_id)]
    assert [r["reasons"] for r in sent] == [["DUPLICATE"]]


async def test_undo_a_move_from_its_confirmation(console, make_user, ingest, pool):
    # given an alert alone in its incident, and a target
    phish, target = await ingest(
        alert_in("phish", "Phishing email delivered to erin.lee@contoso.com", minutes=30),
        alert_in("target", "Ransomware behavior detected on SRV-7731", minutes=10),
    )
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))
    moves_sent = requests_of(page, "LinkAlerts")
    undos_sent = requests_of(page, "RevertMove")

    # when the analyst moves it (which resolves its emptied incident)
    await page.get_by_role("link", name="Alerts", exact=True).click()
    await page.get_by_role("checkbox", name=f"Select alert {phish.id}: {phish.title}").check()
    await page.get_by_role("button", name="Move 1 alert to another incident").click()
    panel = page.get_by_role("dialog", name="Move alert to another incident")
    await panel.get_by_role("combobox", name="Incident name or ID").fill(str(target.incident_id))
    await panel.get_by_label("Comment").fill("Same campaign as the ransomware")
    await panel.get_by_role("button", name="Save").click()
    # the queue stays (issue 15, item 6), with the confirmation
    await expect(page).to_have_url(re.compile(r"#/alerts$"))
    confirmation = page.locator(".confirmation")
    await expect(confirmation).to_contain_text(f"Moved 1 alert to #{target.incident_id} · View")
    move = await pool.fetchval("SELECT id FROM moves")
    assert await status_of(pool, phish.incident_id) == ("resolved", None)

    # and undoes it from the confirmation, keeping the prefilled comment and adding to it
    await confirmation.get_by_role("button", name=f"Undo move #{move}").click()
    dialog = page.get_by_role("dialog", name=f"Undo move #{move}")
    comment = dialog.get_by_label("Comment")
    await expect(comment).to_be_focused()
    await expect(comment).to_have_value("Undo: Same campaign as the ransomware")
    await page.keyboard.type(" (wrong incident)")
    await dialog.get_by_role("button", name="Undo").click()

    # then the undo's page shows where the alert went back, and the original move is marked undone
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Revert #"))
    revert = await pool.fetchval("SELECT id FROM moves WHERE reverts_move_id = $1", move)
    await expect(page).to_have_url(re.compile(rf"#/moves/{revert}$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Revert #{revert}")
    await expect(page.locator(".confirmation")).to_contain_text(
        f"Undid move #{move}: 1 alert went back to the incident it came from."
    )
    row = page.locator("table.items > tbody > tr")
    await expect(row).to_have_count(1)
    await expect(row).to_have_text(
        f"#{phish.id} {phish.title}#{target.incident_id} {target.title}#{phish.incident_id} {phish.title}"
    )
    await page.locator(".details dl").get_by_role("link", name=f"Move #{move}").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Move #{move}")
    await expect(page.get_by_text(f"Already undone by Revert #{revert}.")).to_be_visible()
    await expect(page.get_by_role("button", name=re.compile("^Undo"))).to_have_count(0)

    # and the target's Moves tab lists both, newest first, the move marked undone
    await console.open(f"#/incidents/{target.incident_id}/moves")
    rows = page.locator("table.moves > tbody > tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0).get_by_role("link", name=f"Revert #{revert}")).to_be_visible()
    await expect(rows.nth(0)).to_contain_text("Can be undone")
    await expect(rows.nth(1).get_by_role("link", name=f"Move #{move}")).to_be_visible()
    await expect(rows.nth(1)).to_contain_text(f"Undone by Revert #{revert}")

    # and the alert's page tells where it has been, and how it got there
    await page.get_by_role("link", name="Alerts", exact=True).click()
    await page.get_by_role("link", name=phish.title, exact=True).click()
    places = page.locator(".history > li")
    await expect(places).to_have_count(3)
    await expect(places.nth(0)).to_contain_text(f"#{phish.incident_id} {phish.title} · where ingestion put it")
    await expect(places.nth(1)).to_contain_text(f"#{target.incident_id} {target.title} · by Move #{move}")
    await expect(places.nth(2)).to_contain_text(f"#{phish.incident_id} {phish.title} · by Revert #{revert}")
    await expect(places.nth(2)).to_contain_text("(now)")

    # and the alert is back in its incident, reopened; both Saves sent a key of their own
    assert await where_alerts_are(pool) == {phish.id: phish.incident_id, target.id: target.incident_id}
    assert await status_of(pool, phish.incident_id) == ("active", None)
    assert await pool.fetchval("SELECT comment FROM moves WHERE id = $1", revert) == (
        "Undo: Same campaign as the ransomware (wrong incident)"
    )
    [moved], [undone] = moves_sent, undos_sent
    assert UUID.match(moved["idempotencyKey"]) and UUID.match(undone["idempotencyKey"])
    assert moved["idempotencyKey"] != undone["idempotencyKey"]


async def test_open_a_move_from_the_log_page_its_alerts_and_undo_it_there(console, make_user, ingest, pool):
    # given 55 alerts of one incident moved to another through the API
    alerts = await ingest(
        *[
            alert_in(f"s{i}", f"Beacon {i} to 185.220.101.7 from WS-1001", minutes=i, entities=[("device", "WS-1001")])
            for i in range(55)
        ]
    )
    [target] = await ingest(alert_in("t", "Ransomware behavior detected on SRV-7731", minutes=-10))
    source = alerts[0].incident_id
    assert {a.incident_id for a in alerts} == {source}
    analyst = await make_user("analyst", "*=write")
    move = await link(analyst, alerts, target.incident_id, "One C2 server behind all of them")
    page = console.page
    await console.sign_in(analyst)

    # when the analyst opens the target's log and follows an entry's link to its move
    await console.open(f"#/incidents/{target.incident_id}/log")
    entry = page.locator('.entry[data-kind="ALERT_LINKED"]').first
    await entry.get_by_role("link", name=f"Move #{move}").click()

    # then the move's page says what it did, who did it and why, and pages its alerts
    await expect(page).to_have_url(re.compile(rf"#/moves/{move}$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Move #{move}")
    await expect(page.locator(".meta")).to_contain_text("Alerts moved to another incident by analyst")
    details = page.locator(".details dl")
    await expect(details).to_contain_text("One C2 server behind all of them")
    await expect(details.get_by_role("link", name=f"#{target.incident_id} {target.title}")).to_be_visible()
    await expect(details.get_by_role("link", name=f"#{source} {alerts[0].title}")).to_be_visible()
    await expect(details).to_contain_text("Not undone")
    rows = page.locator("table.items > tbody > tr")
    await expect(rows).to_have_count(50)
    await expect(page.get_by_text("Showing 50 of 55 alerts")).to_be_visible()
    await page.get_by_role("button", name="More alerts").click()
    await expect(rows).to_have_count(55)
    await expect(rows.filter(has_text=f"#{source} {alerts[0].title}#{target.incident_id}")).to_have_count(55)

    # when they undo it from there with the keyboard, the prefilled comment as it is
    await page.get_by_role("button", name=f"Undo move #{move}").press("Enter")
    dialog = page.get_by_role("dialog", name=f"Undo move #{move}")
    await expect(dialog.get_by_label("Comment")).to_have_value("Undo: One C2 server behind all of them")
    await page.keyboard.press("Tab")
    await expect(dialog.get_by_role("button", name="Undo")).to_be_focused()
    await page.keyboard.press("Enter")

    # then every alert is back, and the undo's page lists them going back
    await expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Revert #"))
    revert = await pool.fetchval("SELECT id FROM moves WHERE reverts_move_id = $1", move)
    await expect(page).to_have_url(re.compile(rf"#/moves/{revert}$"))
    await expect(page.locator(".confirmation")).to_contain_text(f"Undid move #{move}: 55 alerts went back")
    await expect(page.get_by_text("Showing 50 of 55 alerts")).to_be_visible()
    await expect(page.locator(".details dl").get_by_role("link", name=f"Move #{move}")).to_be_visible()
    assert set((await where_alerts_are(pool)).values()) == {source, target.incident_id}
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE incident_id = $1", source) == 55
    assert await status_of(pool, source) == ("active", None)


async def test_a_merge_the_viewer_may_not_fully_write_names_the_source_changes_nothing_and_suggests_it_as_target(
    console, make_user, ingest, pool
):
    # given an incident the analyst may write, and one whose alerts they may only read
    [ours] = await ingest(alert_in("o", "Anomalous sign-in for judy.hill from 10.1.2.3", minutes=5))
    [theirs] = await ingest(alert_in("f", "Password spray against judy.hill", scope="finance"))
    page = console.page
    await console.sign_in(await make_user("analyst", "default=write", "finance=read"))
    before = await state(pool)

    # when they merge both into their own
    for alert in (ours, theirs):
        await page.get_by_role("checkbox", name=f"Select incident {alert.incident_id}: {alert.title}").check()
    await page.get_by_role("button", name="Merge 2 incidents").click()
    panel = page.get_by_role("dialog", name="Merge incidents")
    await panel.get_by_role("radio", name=f"#{ours.incident_id} {ours.title}").check()
    await panel.get_by_label("Comment").fill("Same account")
    await panel.get_by_role("button", name="Save").click()

    # then the refusal is shown at the incidents, the read-only one marked, and nothing changed
    error = panel.locator("#merge-incidents-error")
    await expect(error).to_be_visible()
    refused = panel.locator(".merge-incidents li.invalid")
    await expect(refused).to_have_count(1)
    await expect(refused).to_contain_text(f"#{theirs.incident_id} {theirs.title}")
    radio = panel.get_by_role("radio", name=f"#{theirs.incident_id} {theirs.title}")
    await expect(radio).to_have_attribute("aria-invalid", "true")
    await expect(radio).to_be_focused()
    await expect(panel.get_by_label("Comment")).not_to_have_attribute("aria-invalid", "true")
    await expect(error).to_contain_text(
        f"You may pick #{theirs.incident_id} as the target instead: a target's alerts do not move."
    )
    assert await state(pool) == before

    # and Escape closes the panel and gives the focus back to the merge button
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(page.get_by_role("button", name="Merge 2 incidents")).to_be_focused()
    assert await state(pool) == before

    # and merging into the read-only incident instead works: the target's alerts do not move
    await page.keyboard.press("Enter")
    await panel.get_by_role("radio", name=f"#{theirs.incident_id} {theirs.title}").check()
    await panel.get_by_label("Comment").fill("Same account")
    await panel.get_by_role("button", name="Save").click()
    await expect(page).to_have_url(re.compile(rf"#/incidents/{theirs.incident_id}/log$"))
    assert await status_of(pool, ours.incident_id) == ("redirected", theirs.incident_id)
    assert await where_alerts_are(pool) == {ours.id: theirs.incident_id, theirs.id: theirs.incident_id}


async def test_an_undo_refused_because_an_alert_moved_since_names_it_and_the_later_move(
    console, make_user, ingest, pool
):
    # given an alert moved once through the API
    alert, target, elsewhere = await ingest(
        alert_in("a", "Suspicious PowerShell command line on WS-1234"),
        alert_in("t", "Credential dumping via LSASS access on WS-1234", minutes=5),
        alert_in("e", "Beacon to 185.220.101.7 from WS-1001", minutes=9),
    )
    analyst = await make_user("analyst", "*=write")
    first = await link(analyst, [alert], target.incident_id, "Same host")
    page = console.page
    await console.sign_in(analyst)
    await console.open(f"#/moves/{first}")
    await page.get_by_role("button", name=f"Undo move #{first}").click()
    dialog = page.get_by_role("dialog", name=f"Undo move #{first}")

    # when the alert moves again while the dialog is open, and the analyst confirms the undo
    later = await link(analyst, [alert], elsewhere.incident_id, "No, this one")
    before = await state(pool)
    await dialog.get_by_role("button", name="Undo").click()

    # then the dialog says why, links the alert and the later move, and nothing changed
    await expect(dialog.locator("#undo-alerts-error")).to_be_visible()
    await expect(dialog.get_by_role("link", name=f"Alert #{alert.id} {alert.title}")).to_be_visible()
    await expect(dialog.get_by_role("link", name=f"Move #{later}")).to_be_visible()
    assert await state(pool) == before

    # and the later move's link leads to its page; the first move can no longer be undone
    await dialog.get_by_role("link", name=f"Move #{later}").click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Move #{later}")
    await console.open(f"#/moves/{first}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Move #{first}")
    await expect(page.get_by_text("You cannot undo it")).to_be_visible()
    await expect(page.get_by_role("button", name=re.compile("^Undo"))).to_have_count(0)


async def test_a_merge_whose_answer_was_lost_merges_once_when_saved_again(console, make_user, ingest, pool):
    a, b = await ingest(
        alert_in("a", "Phishing email delivered to erin.lee@contoso.com"),
        alert_in("b", "Beacon to 185.220.101.7 from WS-1001", minutes=5),
    )
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))
    sent = requests_of(page, "MergeIncidents")
    await lose_first_answer(page, "MergeIncidents")
    for alert in (a, b):
        await page.get_by_role("checkbox", name=f"Select incident {alert.incident_id}: {alert.title}").check()
    await page.get_by_role("button", name="Merge 2 incidents").click()
    panel = page.get_by_role("dialog", name="Merge incidents")
    await panel.get_by_label("Comment").fill("Duplicates")

    # the first Save is applied, but its answer is lost: the panel says so and stays open
    await panel.get_by_role("button", name="Save").click()
    await expect(panel.locator("#merge-form-error")).to_contain_text("The server cannot be reached")
    assert await pool.fetchval("SELECT count(*) FROM moves") == 1

    # Save again: the same key, answered with the first result; still one merge
    await panel.get_by_role("button", name="Save").click()
    await expect(page).to_have_url(re.compile(rf"#/incidents/{a.incident_id}/log$"))
    assert await pool.fetchval("SELECT count(*) FROM moves") == 1
    assert await status_of(pool, b.incident_id) == ("redirected", a.incident_id)
    assert len(sent) == 2 and sent[0] == sent[1]
    forget_lost_answers(console)


async def test_an_undo_whose_answer_was_lost_undoes_once_when_saved_again(console, make_user, ingest, pool):
    alert, target = await ingest(
        alert_in("a", "Phishing email delivered to erin.lee@contoso.com"),
        alert_in("t", "Beacon to 185.220.101.7 from WS-1001", minutes=5),
    )
    analyst = await make_user("analyst", "*=write")
    move = await link(analyst, [alert], target.incident_id, "Same story")
    page = console.page
    await console.sign_in(analyst)
    sent = requests_of(page, "RevertMove")
    await lose_first_answer(page, "RevertMove")
    await console.open(f"#/moves/{move}")
    await page.get_by_role("button", name=f"Undo move #{move}").click()
    dialog = page.get_by_role("dialog", name=f"Undo move #{move}")

    await dialog.get_by_role("button", name="Undo").click()
    await expect(dialog.locator("#undo-form-error")).to_contain_text("The server cannot be reached")
    await dialog.get_by_role("button", name="Undo").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Revert #"))
    revert = await pool.fetchval("SELECT id FROM moves WHERE reverts_move_id = $1", move)
    await expect(page).to_have_url(re.compile(rf"#/moves/{revert}$"))
    assert await pool.fetchval("SELECT count(*) FROM moves") == 2
    assert await where_alerts_are(pool) == {alert.id: alert.incident_id, target.id: target.incident_id}
    assert len(sent) == 2 and sent[0] == sent[1]
    forget_lost_answers(console)


async def test_a_move_whose_answer_was_lost_moves_once_when_saved_again(console, make_user, ingest, pool):
    alert, target = await ingest(
        alert_in("a", "Phishing email delivered to erin.lee@contoso.com"),
        alert_in("t", "Beacon to 185.220.101.7 from WS-1001", minutes=5),
    )
    page = console.page
    # as over plain http on another host, where crypto.randomUUID does not exist
    await page.add_init_script("delete Crypto.prototype.randomUUID")
    await console.sign_in(await make_user("analyst", "*=write"))
    assert await page.evaluate("typeof crypto.randomUUID") == "undefined"
    sent = requests_of(page, "LinkAlerts")
    await lose_first_answer(page, "LinkAlerts")
    await page.get_by_role("link", name="Alerts", exact=True).click()
    await page.get_by_role("checkbox", name=f"Select alert {alert.id}: {alert.title}").check()
    await page.get_by_role("button", name="Move 1 alert to another incident").click()
    panel = page.get_by_role("dialog", name="Move alert to another incident")
    await panel.get_by_role("combobox", name="Incident name or ID").fill(str(target.incident_id))
    await panel.get_by_label("Comment").fill("Same story")

    await panel.get_by_role("button", name="Save").click()
    await expect(panel.locator("#move-form-error")).to_contain_text("The server cannot be reached")
    await panel.get_by_role("button", name="Save").click()

    await page.locator(".confirmation").get_by_role("link", name="View").click()
    await expect(page).to_have_url(re.compile(rf"#/incidents/{target.incident_id}/log$"))
    await expect(page.locator('.entry.new[data-kind="ALERT_LINKED"]')).to_have_count(1)
    assert await pool.fetchval("SELECT count(*) FROM moves") == 1
    assert await pool.fetchval("SELECT count(*) FROM activity_log WHERE kind = 'alert_linked'") == 1
    assert len(sent) == 2 and sent[0] == sent[1]
    assert UUID.match(sent[0]["idempotencyKey"])
    forget_lost_answers(console)
