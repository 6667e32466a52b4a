"""Moving alerts in the web console, as an analyst does it in a real browser."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.conftest import alert_in

COMMENT = "Same actor: the beacon and the phish share the C2 server"


async def where_alerts_are(pool) -> dict[int, int]:
    return {r["id"]: r["incident_id"] for r in await pool.fetch("SELECT id, incident_id FROM alerts")}


async def check_alert(page, alert) -> None:
    await page.get_by_role("checkbox", name=f"Select alert {alert.id}: {alert.title}").check()


async def test_move_two_alerts_to_an_existing_incident_picked_by_keyboard(console, make_user, ingest, pool):
    # given two alerts in incidents of their own, a target, and a decoy whose name is close to it
    phish, beacon = await ingest(
        alert_in("phish", "Phishing email delivered to erin.lee@contoso.com", minutes=30),
        alert_in("beacon", "Beacon to 185.220.101.7 from WS-1001", minutes=40),
    )
    target, decoy = await ingest(
        alert_in("target", "Ransomware behavior detected on SRV-7731", minutes=10),
        alert_in("decoy", "Ransomware behavior detected on SRV-2040", minutes=20),
    )
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))

    # when the analyst checks both alerts in the alerts queue and opens the panel
    await page.get_by_role("link", name="Alerts", exact=True).click()
    await check_alert(page, phish)
    await check_alert(page, beacon)
    await page.get_by_role("button", name="Move 2 alerts to another incident").click()
    panel = page.get_by_role("dialog", name="Move multiple alerts to another incident")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_label("Link to an existing incident")).to_be_checked()

    # and types part of the target's name, then picks it with the arrow keys and Enter
    field = panel.get_by_role("combobox", name="Incident name or ID")
    await field.press_sequentially("ransom srv")
    options = panel.get_by_role("option")
    await expect(options).to_have_count(2)
    await expect(options.first).to_contain_text(f"#{decoy.incident_id} ")  # most recently active first
    await field.press("ArrowDown")
    await field.press("ArrowDown")
    await expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    await field.press("Enter")
    await expect(field).to_have_value(f"#{target.incident_id} Ransomware behavior detected on SRV-7731")
    await expect(panel.get_by_role("listbox")).to_be_hidden()

    await panel.get_by_label("Comment").fill(COMMENT)
    await panel.get_by_role("button", name="Save").click()

    # then the queue stays as it was, with a confirmation (issue 15, item 6)
    await expect(panel).to_be_hidden()
    await expect(page).to_have_url(re.compile(r"#/alerts$"))
    done = page.locator(".confirmation")
    await expect(done).to_contain_text(f"Moved 2 alerts to #{target.incident_id} · View")
    # and View opens the target on its activity log with both new entries
    await done.get_by_role("link", name="View").click()
    await expect(page).to_have_url(re.compile(rf"#/incidents/{target.incident_id}/log$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Ransomware behavior detected on SRV-7731")
    new_entries = page.locator(".entry.new")
    await expect(new_entries).to_have_count(2)
    for alert in (phish, beacon):
        entry = new_entries.filter(has_text=f"#{alert.id} {alert.title}")
        await expect(entry).to_contain_text("Alert moved in by analyst")
        await expect(entry).to_contain_text(COMMENT)
        source = entry.locator(".other")
        await expect(source).to_have_text(f"Moved here from #{alert.incident_id} {alert.title}")
        await expect(source.get_by_role("link")).to_have_attribute("href", f"#/incidents/{alert.incident_id}")

    # and the alerts are listed under the target
    await page.get_by_role("link", name="Alerts (3)").click()
    for alert in (phish, beacon, target):
        await expect(page.get_by_role("link", name=alert.title, exact=True)).to_be_visible()
    assert await where_alerts_are(pool) == {
        phish.id: target.incident_id,
        beacon.id: target.incident_id,
        target.id: target.incident_id,
        decoy.id: decoy.incident_id,
    }


async def test_move_two_alerts_to_a_new_incident_with_the_keyboard_alone(console, make_user, ingest, pool):
    # given two alerts in one incident, and one in another
    first, second = await ingest(
        alert_in(
            "first",
            "Credential dumping via LSASS access on WS-4821",
            category="CredentialAccess",
            entities=[("device", "WS-4821")],
        ),
        alert_in(
            "second",
            "Pass-the-hash activity from WS-4821",
            category="LateralMovement",
            minutes=5,
            entities=[("device", "WS-4821")],
        ),
    )
    [other] = await ingest(alert_in("other", "Password spray against ivan.king", minutes=9))
    assert first.incident_id == second.incident_id
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))

    # when the analyst expands the incident in the queue and checks both alerts with the keyboard
    await page.get_by_role("button", name=f"Alerts of incident {first.incident_id}").press("Enter")
    for alert in (first, second):
        await page.get_by_role("checkbox", name=f"Select alert {alert.id}: {alert.title}").press("Space")
    await page.get_by_role("button", name="Move 2 alerts to another incident").press("Enter")
    panel = page.get_by_role("dialog", name="Move multiple alerts to another incident")
    await expect(panel.get_by_role("combobox", name="Incident name or ID")).to_be_focused()

    # and chooses "Create a new incident", writes a comment and saves, all from the keyboard
    await page.keyboard.press("Shift+Tab")
    await expect(panel.get_by_label("Link to an existing incident")).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(panel.get_by_label("Create a new incident")).to_be_checked()
    await expect(panel.get_by_role("combobox")).to_be_hidden()
    await page.keyboard.press("Tab")
    await expect(panel.get_by_label("Comment")).to_be_focused()
    await page.keyboard.type("Hands-on-keyboard activity, its own story")
    await page.keyboard.press("Tab")
    await expect(panel.get_by_role("button", name="Save")).to_be_focused()
    await page.keyboard.press("Enter")

    # then the queue says where they went, and View opens the new incident's log: created, and both
    # alerts moved in
    done = page.locator(".confirmation")
    await expect(done).to_contain_text(re.compile(r"Moved 2 alerts to #\d+ · View"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Incidents")
    await done.get_by_role("link", name="View").focus()
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"#/incidents/\d+/log$"))
    new_id = int(page.url.rsplit("/", 2)[-2])
    assert new_id not in {first.incident_id, other.incident_id}
    name = await pool.fetchval("SELECT name FROM incidents WHERE id = $1", new_id)
    await expect(page.get_by_role("heading", level=1)).to_have_text(name)
    new_entries = page.locator(".entry.new")
    await expect(new_entries).to_have_count(3)
    await expect(new_entries.filter(has_text="Incident created")).to_have_count(1)
    moved_in = new_entries.filter(has_text="Alert moved in by analyst")
    await expect(moved_in).to_have_count(2)
    await expect(moved_in.filter(has_text="Hands-on-keyboard activity, its own story")).to_have_count(2)
    await page.get_by_role("link", name="Alerts (2)").click()
    for alert in (first, second):
        await expect(page.get_by_role("link", name=alert.title, exact=True)).to_be_visible()
    assert await where_alerts_are(pool) == {
        first.id: new_id,
        second.id: new_id,
        other.id: other.incident_id,
    }
    # the emptied source is resolved
    assert await pool.fetchval("SELECT status::text FROM incidents WHERE id = $1", first.incident_id) == "resolved"
