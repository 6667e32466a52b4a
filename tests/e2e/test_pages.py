"""The console and GraphiQL pages over HTTP: served by the app, from the app, with no CDN."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from app.server import create_app
from app.web import STATIC

HTML = {"Accept": "text/html"}


@pytest.fixture
async def demo_client(pool, settings):
    app = create_app(settings, pool=pool, demo_token="igt_demo<&>")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as c:
        yield c


async def test_the_console_is_served_at_the_root(client):
    response = await client.get("/", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/app.js">' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert (await client.get("/static/js/app.js")).status_code == 200


async def test_the_demo_token_is_handed_out_only_in_demo_mode(client, demo_client):
    assert (await client.get("/demo.json")).json() == {"token": None}
    assert (await demo_client.get("/demo.json")).json() == {"token": "igt_demo<&>"}


async def test_graphiql_loads_only_local_files_that_match_their_hashes(client):
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200, response.text
    page = response.text
    assert "unpkg" not in page and "cdn" not in page.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"(?:\s+integrity="([^"]+)")?', page)
    assert {url for url, _ in assets} >= {
        "/static/vendor/graphiql-3.8.3/graphiql.min.js",
        "/static/vendor/graphiql-3.8.3/graphiql.min.css",
        "/static/vendor/react-18.2.0/react.production.min.js",
        "/static/vendor/react-18.2.0/react-dom.production.min.js",
        "/static/graphiql-page.js",
    }
    for url, integrity in assets:
        if url.startswith("data:"):
            continue
        assert url.startswith("/static/"), url
        served = await client.get(url)
        assert served.status_code == 200, url
        if integrity:
            digest = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
            assert integrity == f"sha384-{digest}", url
    assert (STATIC / "vendor" / "README.md").exists()


async def test_graphiql_is_prefilled_with_the_demo_token_escaped(demo_client):
    page = (await demo_client.get("/graphql", headers=HTML)).text
    assert 'data-demo-token="igt_demo&lt;&amp;&gt;"' in page


async def test_the_demo_token_is_not_handed_to_other_machines(pool, settings):
    app = create_app(settings, pool=pool, demo_token="igt_demo")
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as remote:
        assert (await remote.get("/demo.json")).json() == {"token": None}
        page = await remote.get("/graphql", headers=HTML)
    assert "igt_demo" not in page.text


async def test_the_demo_token_is_not_handed_to_a_rebound_name(demo_client):
    """A page on evil.example whose name now points at 127.0.0.1 still says evil.example."""
    response = await demo_client.get("/demo.json", headers={"Host": "evil.example:8000"})
    assert response.json() == {"token": None}
