"""`make screenshots`: PNGs of the console over the demo data, for the README.

Not collected by `pytest` (the file name has no test_ prefix); the Makefile names it explicitly.
The pictures go to $SCREENSHOTS_DIR, docs/screenshots/ by default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.async_api import expect

from app.config import ROOT
from app.domain import seed

OUT = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "docs" / "screenshots")
# Each state at a desktop's width and a phone's: NAME.png and NAME-390.png.
WIDE, NARROW = {"width": 1440, "height": 860}, {"width": 390, "height": 844}


async def snap(console, name: str) -> None:
    """The page as it is, at both widths; axe-core checks it at each."""
    page = console.page
    await page.screenshot(path=OUT / f"{name}.png")
    await console.axe(f"{name}, 1440 px")
    await page.set_viewport_size(NARROW)
    await page.wait_for_timeout(100)
    await page.screenshot(path=OUT / f"{name}-390.png")
    await console.axe(f"{name}, 390 px")
    await page.set_viewport_size(WIDE)


async def test_screenshots(console, make_user, pool):
    async with pool.acquire() as conn:
        await seed.seed(conn=conn, incidents=seed.DEMO_INCIDENTS)
    OUT.mkdir(parents=True, exist_ok=True)
    page = console.page
    await page.set_viewport_size(WIDE)
    await console.sign_in(await make_user("analyst", "*=write"))

    # the incidents queue, its first incident expanded with two alerts checked
    await page.locator("button.expand").first.click()
    boxes = page.locator("tr.expansion input[type=checkbox]:enabled")
    await boxes.nth(0).check()
    await boxes.nth(1).check()
    await expect(page.get_by_role("button", name="Move 2 alerts to another incident")).to_be_visible()
    await snap(console, "incidents-queue")

    # the panel, from the alerts queue, with typeahead results and the second one active
    await page.get_by_role("link", name="Alerts", exact=True).click()
    boxes = page.locator("table.alerts input[type=checkbox]:enabled")
    await boxes.nth(0).check()
    await boxes.nth(1).check()
    await page.get_by_role("button", name="Move 2 alerts to another incident").click()
    await page.get_by_label("Comment").fill("Same operator: both run from the C2 server seen on the SRV hosts.")
    field = page.get_by_role("combobox", name="Incident name or ID")
    await field.press_sequentially("on srv")
    await expect(page.get_by_role("option").nth(2)).to_be_visible()
    await field.press("ArrowDown")
    await field.press("ArrowDown")
    await snap(console, "move-panel")

    # the queue right after the move, with its confirmation; View opens the target's log
    await field.press("Enter")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".confirmation")).to_be_visible()
    await snap(console, "move-confirmation")
    await page.locator(".confirmation").get_by_role("link", name="View").click()
    await expect(page.locator(".entry.new").first).to_be_visible()
    await snap(console, "activity-log")

    # triage on the incident's page: taken, classified, resolved with a comment
    await page.get_by_role("button", name="Assign to me").click()
    await expect(page.get_by_role("button", name="Unassign me")).to_be_visible()
    await page.get_by_label("Status").select_option("IN_PROGRESS")
    await page.get_by_label("Classification").select_option("TRUE_POSITIVE")
    await page.get_by_label("Determination").select_option("MULTI_STAGED_ATTACK")
    await page.get_by_label("Comment (optional)").fill("Contained: hosts isolated, the C2 domain blocked.")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator('.entry.new[data-kind="CLASSIFIED"]')).to_be_visible()
    await snap(console, "incident-triage")

    # the queue sorted by severity, open incidents only
    await page.get_by_role("link", name="Incidents", exact=True).first.click()
    await page.get_by_label("Status").select_option("OPEN")
    await page.locator("th button.sort", has_text="Severity").click()
    await expect(page.locator("th[aria-sort]")).to_contain_text("Severity")
    await expect(page.locator("table.queue > tbody > tr").first).to_be_visible()
    await snap(console, "incidents-sorted")

    # the merge panel over the queue, three incidents checked, the default target kept
    await console.open("#/incidents")
    await expect(page.locator("th[aria-sort]")).to_contain_text("Last activity")
    boxes = page.locator("table.queue > tbody > tr > td.check input[type=checkbox]:enabled")
    for i in range(3):
        await boxes.nth(i).check()
    await page.get_by_role("button", name="Merge 3 incidents").click()
    panel = page.get_by_role("dialog", name="Merge incidents")
    await panel.get_by_label("Same actor").check()
    await panel.get_by_label("Same campaign").check()
    await panel.get_by_label("Comment").fill("One campaign: the same C2 server and the same phishing kit.")
    await snap(console, "merge-panel")

    # the target's log right after the merge: the confirmation with its Undo
    await panel.get_by_role("button", name="Save").click()
    await expect(page.locator(".confirmation")).to_be_visible()
    await expect(page.locator(".entry.new").first).to_be_visible()
    await snap(console, "merge-confirmation")

    # the merge's page, opened from the log: what it did, alert by alert, and its Undo
    await page.locator(".entry.new").first.get_by_role("link", name=re.compile(r"^Merge #")).click()
    await expect(page.locator("table.items > tbody > tr").first).to_be_visible()
    await snap(console, "move-page")
