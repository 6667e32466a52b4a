"""Traces (app/tracing.py): a span per request named after its GraphQL operation, with its SQL
statements as child spans, sent over OTLP/HTTP to the endpoint OTEL_EXPORTER_OTLP_ENDPOINT
names; and without an endpoint, nothing of OpenTelemetry in the server at all."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import httpx
import pytest
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app import config, db
from app.config import ConfigError, Settings
from app.domain import users
from tests.conftest import alert_id, alert_in, inc
from tests.live import Server

TYPEAHEAD = """
query Typeahead($q: String!) { incidents(filter: {search: $q}, first: 10) { edges { node {
  id name alertCount alerts(first: 5) { edges { node { id title } } } } } } }
"""
LINK = """
mutation LinkAlerts($ids: [ID!]!, $target: LinkTarget!, $comment: String!) {
  linkAlerts(alertIds: $ids, target: $target, comment: $comment) {
    targetIncident { id alertCount } errors { code message }
  }
}
"""
# Not a document the lean path runs (__typename at the root): graphql-core's path names it.
WHO_AM_I = "query WhoAmI { __typename viewer { name } }"
MAX_PAYLOAD = 16 * 1024 * 1024


class Collector:
    """An OTLP/HTTP endpoint in the test process: keeps what is POSTed to /v1/traces, until stopped."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if self.path != "/v1/traces" or length > MAX_PAYLOAD:
                    self.send_error(404 if self.path != "/v1/traces" else 413)
                    return
                collector.payloads.append(self.rfile.read(length))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def spans(self) -> list[dict]:
        """Every span received, flattened: its resource's attributes under "resource"."""
        found = []
        for payload in list(self.payloads):
            for resource_spans in ExportTraceServiceRequest.FromString(payload).resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append(
                            {
                                "name": span.name,
                                "kind": span.kind,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "attributes": _attributes(span.attributes),
                                "resource": resource,
                            }
                        )
        return found


def _value(value: AnyValue):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs) -> dict:
    return {pair.key: _value(pair.value) for pair in pairs}


SERVER, CLIENT = 2, 3  # Span.SpanKind in the OTLP protobuf


@pytest.fixture(scope="module")
def collector():
    started = Collector()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def traced_server(database_url: str, collector: Collector, tmp_path_factory):
    """`incidents serve --workers 2` exporting to the collector, stopped whatever happens."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel,process",  # process.pid: which worker
        # An operator asking for headers still never gets the token.
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization,user-agent",
    }
    server = Server(database_url, tmp_path_factory.mktemp("traced") / "server.log", env, ("--workers", "2"))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


async def _request_spans(collector: Collector, request_ids: set[str], timeout: float = 15.0) -> dict[str, dict]:
    """The server span of each of these requests, by request id, once they all arrived."""
    deadline = time.monotonic() + timeout
    while True:
        spans = collector.spans()
        by_id = {
            s["attributes"]["incident_graph.request_id"]: s
            for s in spans
            if s["kind"] == SERVER and s["attributes"].get("incident_graph.request_id") in request_ids
        }
        if by_id.keys() == request_ids or time.monotonic() > deadline:
            return by_id
        await asyncio.sleep(0.05)


def _children(collector: Collector, parent: dict) -> list[dict]:
    return [
        s for s in collector.spans() if s["trace_id"] == parent["trace_id"] and s["parent_span_id"] == parent["span_id"]
    ]


async def test_a_request_span_holds_its_operation_and_its_sql_statements(traced_server, collector, pool, ingest):
    # given: two incidents and an analyst's token
    [first] = await ingest(alert_in("t-1", "Credential dumping on sentinel-7731", entities=[("device", "a")]))
    [second] = await ingest(alert_in("t-2", "Beacon to a rare domain", minutes=5, entities=[("device", "b")]))
    async with pool.acquire() as conn:
        token = await users.add_user(conn=conn, name="analyst", grants=[("*", "write")], can_view_incidents=True)
    headers = {"Authorization": f"Bearer {token}"}
    comment = "same intruder: handover note 4242"

    # when: a typeahead and a linkAlerts (the lean path), and a query graphql-core runs, by GET
    async with httpx.AsyncClient(base_url=traced_server.url, headers=headers, timeout=10) as client:
        typeahead = await client.post("/graphql", json={"query": TYPEAHEAD, "variables": {"q": "sentinel"}})
        link = await client.post(
            "/graphql",
            json={
                "query": LINK,
                "variables": {
                    "ids": [alert_id(second.id)],
                    "target": {"existingIncidentId": inc(first.incident_id)},
                    "comment": comment,
                },
            },
        )
        who = await client.get("/graphql", params={"query": WHO_AM_I})
    assert [e["node"]["name"] for e in typeahead.json()["data"]["incidents"]["edges"]] == [
        "Credential dumping on sentinel-7731"
    ]
    assert link.json()["data"]["linkAlerts"]["errors"] == []
    assert who.json()["data"]["viewer"]["name"] == "analyst"

    # then: a server span per request, named after its operation, with the request id
    ids = {r.headers["x-request-id"]: name for r, name in [(typeahead, "T"), (link, "L"), (who, "W")]}
    spans = await _request_spans(collector, set(ids))
    assert spans.keys() == ids.keys(), traced_server.log()
    by_name = {ids[request_id]: span for request_id, span in spans.items()}
    assert {n: s["name"] for n, s in by_name.items()} == {
        "T": "query Typeahead",
        "L": "mutation LinkAlerts",
        "W": "query WhoAmI",
    }
    for name, kind in [("Typeahead", "query"), ("LinkAlerts", "mutation"), ("WhoAmI", "query")]:
        span = next(s for s in by_name.values() if s["name"].endswith(name))
        assert span["attributes"]["graphql.operation.name"] == name
        assert span["attributes"]["graphql.operation.type"] == kind
        assert span["attributes"]["http.status_code"] == 200
        assert span["resource"]["service.name"] == "incident-graph"
        # from a worker process, not the one supervising them
        assert span["resource"]["process.pid"] != traced_server.proc.pid

    # and each one's SQL statements are its child spans, with their text and no parameter values
    # (WhoAmI reads nothing but the viewer: once the process's token cache holds the token, no
    # statement at all; the token is looked up only on a miss, so it is no request's fixed first.)
    statements = {n: _children(collector, span) for n, span in by_name.items()}
    assert statements["T"] and statements["L"]
    for children in statements.values():
        for child in children:
            assert child["kind"] == CLIENT
            assert child["attributes"]["db.system"] == "postgresql"
            assert child["attributes"]["db.statement"].split()[0] == child["name"]
            assert "db.statement.parameters" not in child["attributes"]
    assert any("FROM incidents" in c["attributes"]["db.statement"] for c in statements["T"])
    names = [c["name"] for c in statements["L"]]
    # the move: one statement, its own transaction (linking.apply_link), after the reads that check it
    assert "BEGIN;" not in names and "COMMIT;" not in names
    assert any("FROM pg_temp.link_alerts(" in c["attributes"]["db.statement"] for c in statements["L"])

    # and nothing sent holds a secret or what an analyst typed: not the token, the search, the
    # comment, an alert's title, nor a GET's query string
    sent = b"".join(collector.payloads)
    for secret in [token, "sentinel", comment, "Beacon to a rare domain", "__typename"]:
        assert secret.encode() not in sent, secret
    assert by_name["W"]["attributes"]["http.url"].endswith("/graphql")
    assert by_name["W"]["attributes"]["http.request.header.authorization"] == ["[REDACTED]"]


async def test_with_the_sdk_disabled_the_server_exports_nothing(database_url, collector, pool, tmp_path):
    # given: a server whose SDK is disabled, though an endpoint is set
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SDK_DISABLED": "true"}
    server = Server(database_url, tmp_path / "server.log", env)
    try:
        server.wait_healthy()
        async with pool.acquire() as conn:
            token = await users.add_user(conn=conn, name="quiet", grants=[("*", "read")], can_view_incidents=True)
        received = len(collector.payloads)
        # when: it answers a typeahead
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            response = await client.post(
                "/graphql",
                json={"query": TYPEAHEAD, "variables": {"q": "quiet"}},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 200
        await asyncio.sleep(0.5)  # ten export delays
    finally:
        server.stop()
    # then: nothing arrives
    assert not any(
        s["attributes"].get("incident_graph.request_id") == response.headers["x-request-id"] for s in collector.spans()
    )
    assert len(collector.payloads) == received


PROBE = """
import json, sys
import asyncpg
from app.config import Settings
from app.server import create_app

app = create_app(Settings.from_env())
app.build_middleware_stack()
print(json.dumps({
    "modules": sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"),
    "fetch": type(asyncpg.Connection.__dict__["fetch"]).__name__,
    "middleware": [m.cls.__name__ for m in app.user_middleware],
}))
"""


@pytest.mark.parametrize(
    "env, traced",
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, True),
    ],
    ids=["no-endpoint", "sdk-disabled", "endpoint"],
)
def test_without_an_endpoint_nothing_is_instrumented(database_url, env, traced):
    """Not even imported: no tracer provider, no wrapped asyncpg method, no middleware."""
    clean = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, **env}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, timeout=60, cwd=config.ROOT
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    if traced:
        assert "opentelemetry.sdk.trace" in probe["modules"]
        assert probe["fetch"] == "FunctionWrapper"
        assert probe["middleware"][0] == "RequestSpans"
    else:
        assert probe == {
            "modules": [],
            "fetch": "function",
            "middleware": ["Observe", "RequestId", "ConcurrencyLimit", "BodyLimit"],
        }


@pytest.fixture
def otel_environment(monkeypatch):
    for name in [*config.OTLP_ENDPOINTS, *config.OTLP_PROTOCOLS, "OTEL_SDK_DISABLED"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_traces_are_on_only_with_an_endpoint_and_the_sdk_enabled(otel_environment):
    assert Settings.from_env().traces is False
    otel_environment.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    assert Settings.from_env().traces is True
    otel_environment.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otel_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert Settings.from_env().traces is True
    otel_environment.setenv("OTEL_SDK_DISABLED", "true")
    assert Settings.from_env().traces is False
    otel_environment.setenv("OTEL_SDK_DISABLED", "maybe")
    with pytest.raises(ConfigError, match="OTEL_SDK_DISABLED must be true or false, got 'maybe'"):
        Settings.from_env()


def test_only_the_http_protobuf_protocol_is_taken(otel_environment):
    otel_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    otel_environment.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL must be one of http/protobuf, got 'grpc'"):
        Settings.from_env()
    # the signal's own setting comes first: metrics may go elsewhere by gRPC
    otel_environment.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert Settings.from_env().traces is True


@pytest.fixture
def statement_spans():
    """The asyncpg instrumentation as app/tracing.py installs it, into memory, for one test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = AsyncPGInstrumentor(capture_parameters=False)
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()


async def test_every_kind_of_statement_the_code_issues_is_a_span(statement_spans, pool: asyncpg.Pool, settings):
    # given: a request's view of the pool, as the API has it
    database = db.Database(pool, settings.pool_timeout)
    secret = "alert body: ssh key AAAAB3Nza"

    async def work(conn: asyncpg.Connection) -> None:
        await conn.fetch("SELECT $1::text AS a", secret)
        await conn.fetchrow("SELECT $1::text AS b", secret)
        await conn.fetchval("SELECT $1::text AS c", secret)
        await conn.execute("SELECT set_config('app.probe', $1, true)", secret)
        await conn.executemany("SELECT $1::text AS d", [(secret,), (secret,)])
        await (await conn.prepare("SELECT $1::text AS e")).fetch(secret)

    # when: statements of every kind, through the pool and inside a transaction
    await database.fetchrow("SELECT $1::text AS outside", secret)
    await db.in_transaction(database, work)

    # then: one span each, named after the statement's first word, with its text and no values
    spans = statement_spans.get_finished_spans()
    statements = [s.attributes["db.statement"] for s in spans]
    assert statements == [
        "SELECT $1::text AS outside",
        "BEGIN;",
        "SELECT $1::text AS a",
        "SELECT $1::text AS b",
        "SELECT $1::text AS c",
        "SELECT set_config('app.probe', $1, true)",
        "SELECT $1::text AS d",
        "SELECT $1::text AS e",
        "COMMIT;",
    ]
    for span in spans:
        assert span.attributes["db.system"] == "postgresql"
        assert secret not in json.dumps(dict(span.attributes))


def test_the_readme_lists_the_tracing_settings():
    readme = (config.ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    variables = [*config.OTLP_ENDPOINTS, *config.OTLP_PROTOCOLS, "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED"]
    assert [v for v in variables if f"`{v}`" not in section] == []
