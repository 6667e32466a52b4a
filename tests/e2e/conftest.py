"""Browser tests: a live `incidents serve` over the test database, driven in Debian's Chromium.

Chromium comes from Debian (`make e2e-deps`), never from a download of Playwright's own. Without
it the browser tests are skipped, unless CI is set: then they fail, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import Api
from tests.live import Server

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# axe-core from npm (tests/e2e/axe: `make e2e-deps` installs it), injected into the page under test.
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.2 A and AA, and axe's best practices.
AXE_RUN = """async () => {
  const result = await axe.run(document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
    resultTypes: ["violations"],
  });
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ` +
    v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", "));
}"""
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def live(database_url: str, tmp_path_factory):
    """`incidents serve` in a subprocess, on a free port, over the test database."""
    server = Server(database_url, tmp_path_factory.mktemp("live-server") / "serve.log")
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_server(live: Server) -> str:
    return live.url


@pytest.fixture
def live_server_log(live: Server):
    """What the server logged during this test, read when called."""
    start = len(live.log())
    return lambda: live.log()[start:]


@pytest.fixture(scope="session")
async def browser() -> Browser:
    if not CHROMIUM.exists():
        message = f"Debian's Chromium is not installed at {CHROMIUM}: run `make e2e-deps`"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so browser tests may not be skipped)")
        pytest.skip(message)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        await browser.close()


@dataclass
class Console:
    """The web console in one fresh browser context, as one user at a time."""

    page: Page
    base: str
    problems: list[str] = field(default_factory=list)

    async def sign_in(self, user: Api) -> None:
        await self.page.goto(f"{self.base}/")
        await self.page.get_by_label("API token").fill(user.token)
        await self.page.get_by_role("button", name="Sign in").click()
        await expect(self.page.get_by_text("Signed in as")).to_be_visible()

    async def open(self, route: str) -> None:
        """Go to a console route such as "#/alerts"."""
        await self.page.goto(f"{self.base}/{route}")

    async def axe(self, state: str = "") -> None:
        """axe-core over the page as it is now: any violation fails the test, named with the state."""
        if not AXE.exists():
            pytest.fail(f"axe-core is not installed at {AXE}: run `make e2e-deps`")
        if not await self.page.evaluate("typeof window.axe !== 'undefined'"):
            # Evaluated as DevTools does: the console's CSP (script-src 'self') refuses a script tag.
            await self.page.evaluate(AXE.read_text() + "\n;undefined")
        violations = await self.page.evaluate(AXE_RUN)
        assert violations == [], f"axe-core, {state or self.page.url}: {violations}"


@pytest.fixture
async def console(browser: Browser, live_server: str):
    """A page on the console; the test fails on any script error, console error or outside request."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    result = Console(page, live_server)

    async def local_only(route):
        if route.request.url.startswith(live_server):
            await route.continue_()
        else:
            result.problems.append(f"request outside the app: {route.request.url}")
            await route.abort()

    await context.route("**/*", local_only)
    page.on("pageerror", lambda error: result.problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda m: m.type == "error" and result.problems.append(f"console error: {m.text}"),
    )
    page.on(
        "response",
        lambda r: r.status >= 400 and result.problems.append(f"HTTP {r.status}: {r.url}"),
    )
    yield result
    try:
        # Every test's last state too, on the console (GraphiQL's page is vendored, not ours).
        if not page.is_closed() and page.url.startswith(f"{live_server}/") and "/graphql" not in page.url:
            await result.axe("as the test left it")
    finally:
        await context.close()
    assert result.problems == []
