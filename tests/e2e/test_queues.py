"""The incidents and alerts queues: typeahead search and cursor pages."""

from __future__ import annotations

from playwright.async_api import expect

from tests.conftest import alert_in


async def test_the_incidents_queue_pages_with_more_and_searches_as_you_type(console, make_user, ingest):
    await ingest(
        *[alert_in(f"n{i}", f"Suspicious PowerShell command line on WS-{1000 + i}", minutes=i) for i in range(22)]
    )
    [lateral] = await ingest(
        alert_in("lat", "Possible lateral movement from SRV-4821 using remote services", minutes=-5)
    )
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))
    rows = page.locator("table.queue > tbody > tr")

    await expect(page.get_by_text("Showing 20 of 23 incidents")).to_be_visible()
    await expect(rows).to_have_count(20)
    await page.get_by_role("button", name="More incidents").click()
    await expect(rows).to_have_count(23)
    await expect(page.get_by_role("button", name="More incidents")).to_be_hidden()
    await expect(rows.last).to_contain_text(lateral.title)  # the least recently active comes last

    await page.get_by_label("Search incidents").fill("lat mov 4821")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text(f"{lateral.incident_id}{lateral.title}")
    await page.get_by_label("Search incidents").fill("nothing like this")
    await expect(page.get_by_text("No incidents")).to_be_visible()
    await expect(rows).to_have_count(0)


async def test_the_alerts_queue_searches_titles(console, make_user, ingest):
    await ingest(
        alert_in("a", "Suspicious PowerShell command line on WS-1234"),
        alert_in("b", "Password spray against alice.smith@contoso.com", minutes=1),
    )
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))
    await page.get_by_role("link", name="Alerts", exact=True).click()
    rows = page.locator("table.alerts > tbody > tr")
    await expect(rows).to_have_count(2)
    await page.get_by_label("Search alerts").fill("smith")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("Password spray against alice.smith@contoso.com")


async def test_a_host_fragment_finds_incidents_by_their_evidence(console, make_user, ingest):
    # Given an incident named after a PowerShell detection whose alert was on SRV-9408-51
    [evidence] = await ingest(
        alert_in("ps", "Suspicious PowerShell command line", entities=[("device", "SRV-9408-51"), ("user", "bob")])
    )
    await ingest(alert_in("other", "Phishing email delivered", minutes=5, entities=[("device", "WS-1")]))
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))
    rows = page.locator("table.queue > tbody > tr")
    await expect(rows).to_have_count(2)

    # when the analyst types the host's digits, the incident is listed with the host under its name
    await page.get_by_label("Search incidents").fill("9408")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text(evidence.title)
    await expect(rows.locator(".matched-evidence")).to_have_text("Matched Device SRV-9408-51")
    # and a name match says nothing more
    await page.get_by_label("Search incidents").fill("phishing")
    await expect(rows).to_have_count(1)
    await expect(rows.locator(".matched-evidence")).to_have_count(0)


async def test_the_move_panels_picker_shows_the_evidence_an_incident_matched(console, make_user, ingest):
    [target] = await ingest(
        alert_in("target", "Credential dumping via LSASS", entities=[("device", "SRV-9408-51")], minutes=10)
    )
    [moving] = await ingest(alert_in("moving", "Beacon to a known C2 server", minutes=20))
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))
    await page.get_by_role("link", name="Alerts", exact=True).click()
    await page.get_by_role("checkbox", name=f"Select alert {moving.id}: {moving.title}").check()
    await page.get_by_role("button", name="Move 1 alert to another incident").click()
    panel = page.get_by_role("dialog")
    await panel.get_by_role("combobox", name="Incident name or ID").press_sequentially("srv-9408")
    options = panel.get_by_role("option")
    await expect(options).to_have_count(1)
    await expect(options.first).to_contain_text(f"#{target.incident_id} {target.title}")
    await expect(options.first.locator(".matched-evidence")).to_have_text("Matched Device SRV-9408-51")
