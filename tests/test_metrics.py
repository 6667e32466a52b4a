"""Prometheus metrics at /metrics: every worker of `incidents serve --workers 2` counted, bounded
operation names, and who may scrape."""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict

from app.config import ROOT, ConfigError, Settings
from app.domain import users
from app.metrics import OperationNames
from app.server import create_app
from tests.conftest import alert_id, alert_in, inc
from tests.live import Server, samples, value

TYPEAHEAD = "query Typeahead($q: String!) { incidents(filter: {search: $q}, first: 5) { edges { node { id } } } }"
LINK = """mutation Move($ids: [ID!]!, $to: ID!) {
  linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: "same story") { errors { code } }
}"""
TOO_MANY_WORDS = "a b c d e f g h i"  # a search holds at most 8 words: BAD_USER_INPUT


def requests_by_process(directory) -> dict[int, float]:
    """incident_graph_requests_total as each worker process wrote it to its own file."""
    counts: dict[int, float] = defaultdict(float)
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        for key, count, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[1] == "incident_graph_requests_total":
                counts[pid] += count
    return counts


@pytest.fixture
async def token(pool) -> str:
    """A user who may do everything, for a live server (no in-process client)."""
    async with pool.acquire() as conn:
        return await users.add_user(conn=conn, name="admin", grants=[("*", "write")], can_ingest=True)


async def test_a_scrape_counts_the_requests_of_both_workers(database_url, token, ingest, tmp_path):
    """Given a server of two workers, when a known set of requests has been made, then one scrape
    holds all of them: the counts, the latency histogram, the errors by code, the pool gauges."""
    a, b = await ingest(alert_in("a"), alert_in("b"))
    directory = tmp_path / "metrics"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "DB_POOL_MIN": "1", "DB_POOL_MAX": "4"}
    server = Server(database_url, tmp_path / "server.log", env=env, args=("--workers", "2"))
    headers = {"Authorization": f"Bearer {token}"}
    made = 0
    try:
        await asyncio.to_thread(server.wait_healthy)

        async def typeahead() -> None:
            # A connection of its own each time, so that both workers take some.
            async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as c:
                response = await c.post(
                    "/graphql", json={"query": TYPEAHEAD, "variables": {"q": "alert"}}, headers=headers
                )
                assert response.status_code == 200 and "errors" not in response.json()

        while made < 400 and len([n for n in requests_by_process(directory).values() if n]) < 2:
            await asyncio.gather(*(typeahead() for _ in range(10)))
            made += 10
        assert len([n for n in requests_by_process(directory).values() if n]) == 2, "one worker took every request"

        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as c:
            for _ in range(3):
                assert (await c.post("/graphql", json={"query": TYPEAHEAD})).status_code == 401
            for _ in range(2):
                body = {"query": TYPEAHEAD, "variables": {"q": TOO_MANY_WORDS}}
                errors = (await c.post("/graphql", json=body, headers=headers)).json()["errors"]
                assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
            moves = [([alert_id(a.id)], inc(b.incident_id)), (["alert_999999"], inc(b.incident_id))]
            for ids, to in moves:
                response = await c.post(
                    "/graphql", json={"query": LINK, "variables": {"ids": ids, "to": to}}, headers=headers
                )
                assert response.status_code == 200
            await asyncio.sleep(1.5)  # the pool gauges are sampled once a second
            scrape = await c.get("/metrics")
            for _ in range(5):  # a sample may have met the trigram indexes' merge (a second's upkeep)
                if value(samples(scrape.text), "incident_graph_db_pool_in_use") == 0:
                    break
                await asyncio.sleep(1.1)
                scrape = await c.get("/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        m = samples(scrape.text)
    finally:
        server.stop()

    ok = {"operation": "Typeahead", "type": "query"}  # and the two with BAD_USER_INPUT: GraphQL ran them
    assert value(m, "incident_graph_requests_total", **ok, status="200") == made + 2
    assert value(m, "incident_graph_request_duration_seconds_count", **ok) == made + 2
    assert value(m, "incident_graph_request_duration_seconds_bucket", **ok, le="+Inf") == made + 2
    assert value(m, "incident_graph_request_duration_seconds_bucket", **ok, le="15.0") == made + 2
    assert value(m, "incident_graph_request_duration_seconds_sum", **ok) > 0
    assert value(m, "incident_graph_requests_total", operation="none", type="none", status="401") == 3
    assert value(m, "incident_graph_requests_total", operation="Move", type="mutation", status="200") == 2
    assert value(m, "incident_graph_errors_total", code="UNAUTHENTICATED") == 3
    assert value(m, "incident_graph_errors_total", code="BAD_USER_INPUT") == 2
    assert value(m, "incident_graph_payload_errors_total", mutation="linkAlerts", code="ALERT_NOT_FOUND") == 1
    assert value(m, "incident_graph_alerts_moved_total") == 1
    # Both workers' pools: at least DB_POOL_MIN open connections each, DB_POOL_MAX each at most.
    assert value(m, "incident_graph_db_pool_max") == 8
    assert 2 <= value(m, "incident_graph_db_pool_connections") <= 8
    assert value(m, "incident_graph_db_pool_in_use") == 0
    assert value(m, "incident_graph_db_pool_waiting") == 0
    assert value(m, "incident_graph_db_pool_wait_seconds_count") >= made
    assert value(m, "incident_graph_lean_path_total", outcome="hit", reason="") >= made
    assert value(m, "incident_graph_lean_path_total", outcome="fallback", reason="InvalidArgument") == 2
    assert not directory.exists() or not list(directory.glob("gauge_live*")), "the workers' gauges outlived them"


def test_operation_names_are_bounded():
    names = OperationNames(limit=2)
    assert names.label("Typeahead") == "Typeahead"
    assert names.label(None) == "anonymous"
    assert names.label("1nvalid") == "other"
    assert names.label("x" * 65) == "other"
    assert names.label("IncidentDetail") == "IncidentDetail"
    assert names.label("ThirdOne") == "other"  # the limit is reached
    assert names.label("Typeahead") == "Typeahead"  # a name seen before keeps its label


async def test_only_operations_that_ran_are_named(pool, settings, admin, lean_path):
    """A document that does not validate names no label, whatever its operation is called."""
    bounded = Settings(**{**settings.__dict__, "metrics_max_operations": 1, "lean_path": lean_path})
    app = create_app(bounded, pool=pool)
    before = {
        n: REGISTRY.get_sample_value("incident_graph_requests_total", {"operation": n, "type": t, "status": "200"}) or 0
        for n, t in (("First", "query"), ("other", "query"), ("none", "none"))
    }
    headers = {"Authorization": f"Bearer {admin.token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        await c.post("/graphql", json={"query": "query Broken { viewer { nope } }"}, headers=headers)
        await c.post("/graphql", json={"query": "query First { viewer { name } }"}, headers=headers)
        await c.post("/graphql", json={"query": "query Second { viewer { name } }"}, headers=headers)
    after = {
        n: REGISTRY.get_sample_value("incident_graph_requests_total", {"operation": n, "type": t, "status": "200"}) or 0
        for n, t in (("First", "query"), ("other", "query"), ("none", "none"))
    }
    assert {n: after[n] - before[n] for n in after} == {"First": 1, "other": 1, "none": 1}


async def test_the_metrics_token_is_required_when_set(pool, settings):
    guarded = Settings(**{**settings.__dict__, "metrics": "token", "metrics_token": "s3cret-scrape"})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(guarded, pool=pool)), base_url="http://t"
    ) as c:
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        scraped = await c.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert scraped.status_code == 200 and "incident_graph_requests_total" in scraped.text
    off = Settings(**{**settings.__dict__, "metrics": "off"})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(off, pool=pool)), base_url="http://t"
    ) as c:
        assert (await c.get("/metrics")).status_code == 404


def test_metrics_settings(monkeypatch):
    monkeypatch.setenv("METRICS", "token")
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        Settings.from_env()
    monkeypatch.setenv("METRICS", "private")
    with pytest.raises(ConfigError, match="METRICS must be one of off, public, token"):
        Settings.from_env()
    monkeypatch.delenv("METRICS")
    assert Settings.from_env().metrics == "public"


def test_the_dashboard_and_the_docs_know_every_metric():
    """The Grafana dashboard reads only metrics the server has, and docs/operations.md names all."""
    ours = [m for m in REGISTRY.collect() if m.name.startswith("incident_graph_")]
    families = {m.name for m in ours}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    exposed = {m.name + suffix for m in ours for suffix in suffixes[m.type]}
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    read = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"incident_graph_\w+", target["expr"])
    }
    assert read and read <= exposed, read - exposed
    operations = (ROOT / "docs" / "operations.md").read_text()
    for family in families:
        documented = family.removeprefix("incident_graph_")
        assert f"`{documented}`" in operations or f"`{documented}_total`" in operations, family
