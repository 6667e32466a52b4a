"""Persisted documents: Apollo's automatic persisted queries, trusted documents and the CLI that
registers them, as a client observes them (docs/persisted-documents.md)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import pytest

from app.api.lean import LeanPath
from app.config import Settings
from app.domain import persisted, users
from app.server import create_app
from tests.test_cli import failed_cleanly, ok, run_cli

ME = "query Me { viewer { name } }"
ME_DATA = {"viewer": {"name": "admin"}}
INGEST = (
    "mutation Ingest($alerts: [AlertInput!]!) { ingestAlerts(alerts: $alerts) {"
    " alerts { externalId title } errors { code message } } }"
)
GRAPHQL_RESPONSE = "application/graphql-response+json"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str) -> dict:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}


def alert(external_id: str) -> dict:
    return {
        "externalId": external_id,
        "title": f"Detection {external_id}",
        "severity": "MEDIUM",
        "category": "Execution",
        "detectedAt": datetime(2026, 11, 20, 12, tzinfo=UTC).isoformat(),
        "entities": [{"kind": "DEVICE", "value": f"host-{external_id}"}],
    }


@contextlib.asynccontextmanager
async def _client(pool, settings: Settings, **overrides):
    app = create_app(Settings(**{**settings.__dict__, **overrides}), pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


@pytest.fixture
async def token(pool) -> str:
    async with pool.acquire() as conn:
        return await users.add_user(conn=conn, name="admin", grants=[("*", "write")], can_ingest=True)


@pytest.fixture
async def trusted_client(pool, settings: Settings, lean_path: bool):
    """The app in GRAPHQL_TRUSTED_DOCUMENTS_ONLY mode, on either path."""
    async with _client(pool, settings, lean_path=lean_path, trusted_documents_only=True) as c:
        yield c


async def post(client: httpx.AsyncClient, token: str, accept: str = "application/json", **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": accept}
    return await client.post("/graphql", json=body, headers=headers)


async def get(client: httpx.AsyncClient, token: str, **params) -> httpx.Response:
    query = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()})
    return await client.get(
        f"/graphql?{query}", headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )


def refused(response: httpx.Response, status: int, code: str) -> dict:
    """The one error of a refusal in the server's envelope; returns it."""
    assert response.status_code == status, response.text
    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == code, error
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert "data" not in body
    return error


def data(response: httpx.Response) -> dict:
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


async def stored(pool) -> list[tuple[str, bool]]:
    rows = await pool.fetch("SELECT encode(sha256, 'hex') AS hex, trusted FROM persisted_documents ORDER BY hex")
    return [(r["hex"], r["trusted"]) for r in rows]


async def trust(pool, *bodies: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await persisted.trust(conn=conn, bodies=list(bodies))


# Automatic persisted queries.


async def test_an_unknown_hash_is_not_found_then_registered_with_its_text_then_found(client, token, pool):
    # given a document the server has never seen
    # when a client sends only its hash
    miss = await post(client, token, extensions=apq(ME))
    # then it is asked for the text, as Apollo's persisted-query link expects: HTTP 200, retry
    error = refused(miss, 200, "PERSISTED_QUERY_NOT_FOUND")
    assert error["message"] == "PersistedQueryNotFound"
    assert miss.headers["cache-control"] == "no-store"
    # when it sends the text with the hash, the document runs and is stored, untrusted
    assert data(await post(client, token, query=ME, extensions=apq(ME))) == ME_DATA
    [(hex_, trusted)] = await stored(pool)
    assert (hex_, trusted) == (sha256(ME), False)
    # then the hash alone runs it
    assert data(await post(client, token, extensions=apq(ME))) == ME_DATA


async def test_a_hash_that_is_not_the_text_s_is_refused_and_nothing_is_stored(client, token, pool):
    response = await post(client, token, query=ME, extensions=apq("{ viewer { id } }"))
    error = refused(response, 400, "PERSISTED_QUERY_HASH_MISMATCH")
    assert "SHA-256" in error["message"]
    assert await stored(pool) == []


async def test_a_hash_only_request_runs_on_the_lean_path(pool, settings, token, monkeypatch):
    # The typeahead's kind of document, which the lean path knows.
    search = "query Search($q: String!) { incidents(filter: {search: $q}, first: 3) { totalCount } }"
    answers: list[bytes | None] = []
    execute = LeanPath.execute

    async def recording(self, body, ctx):
        answers.append(await execute(self, body, ctx))
        return answers[-1]

    monkeypatch.setattr(LeanPath, "execute", recording)
    async with _client(pool, settings, lean_path=True) as client:
        await post(client, token, query=search, extensions=apq(search), variables={"q": "x"})
        answers.clear()
        found = data(await post(client, token, extensions=apq(search), variables={"q": "x"}))
    assert found == {"incidents": {"totalCount": 0}}
    [answer] = answers
    assert answer is not None and json.loads(answer)["data"] == found


async def test_a_get_with_a_hash_runs_a_registered_query(client, token):
    # GET, so that a cache can key on the URL
    variables = {"q": "x"}
    search = "query Search($q: String!) { viewer { name } incidents(filter: {search: $q}, first: 1) { totalCount } }"
    refused(await get(client, token, extensions=apq(search), variables=variables), 200, "PERSISTED_QUERY_NOT_FOUND")
    registered = await post(client, token, query=search, extensions=apq(search), variables=variables)
    assert data(await get(client, token, extensions=apq(search), variables=variables)) == data(registered)


async def test_a_mutation_runs_by_its_hash_over_post_and_never_over_get(client, token, pool):
    first = await post(client, token, query=INGEST, extensions=apq(INGEST), variables={"alerts": [alert("a-1")]})
    assert data(first)["ingestAlerts"]["alerts"] == [{"externalId": "a-1", "title": "Detection a-1"}]
    second = await post(client, token, extensions=apq(INGEST), variables={"alerts": [alert("a-2")]})
    assert data(second)["ingestAlerts"]["alerts"] == [{"externalId": "a-2", "title": "Detection a-2"}]
    over_get = await get(client, token, extensions=apq(INGEST), variables={"alerts": [alert("a-3")]})
    assert refused(over_get, 400, "BAD_REQUEST")["message"] == "mutations are not allowed when using GET"
    assert await pool.fetchval("SELECT array_agg(external_id ORDER BY external_id) FROM alerts") == ["a-1", "a-2"]


async def test_malformed_persisted_query_extensions_are_refused(client, token):
    version_2 = {"persistedQuery": {"version": 2, "sha256Hash": sha256(ME)}}
    refused(await post(client, token, extensions=version_2), 400, "PERSISTED_QUERY_INVALID")
    short = {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}
    refused(await post(client, token, extensions=short), 400, "PERSISTED_QUERY_INVALID")
    refused(await post(client, token, documentId="md5:abc"), 400, "PERSISTED_QUERY_INVALID")
    both = await post(client, token, query=ME, documentId=f"sha256:{sha256(ME)}")
    refused(both, 400, "PERSISTED_QUERY_INVALID")


async def test_a_document_that_does_not_parse_runs_its_course_and_is_not_stored(client, token, pool):
    broken = "{ viewer { name }"
    response = await post(client, token, query=broken, extensions=apq(broken))
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert await stored(pool) == []


async def test_apq_stops_storing_past_its_cap_and_still_runs_documents(client, token, pool, monkeypatch):
    monkeypatch.setattr(persisted, "MAX_REMEMBERED", 1)
    other = "query Other { viewer { name } }"
    assert data(await post(client, token, query=ME, extensions=apq(ME))) == ME_DATA
    assert data(await post(client, token, query=other, extensions=apq(other))) == {"viewer": {"name": "admin"}}
    assert await stored(pool) == [(sha256(ME), False)]
    refused(await post(client, token, extensions=apq(other)), 200, "PERSISTED_QUERY_NOT_FOUND")


async def test_the_refusals_use_the_media_type_the_client_accepted(client, token):
    response = await post(client, token, accept=GRAPHQL_RESPONSE, extensions=apq(ME))
    refused(response, 200, "PERSISTED_QUERY_NOT_FOUND")
    assert response.headers["content-type"] == GRAPHQL_RESPONSE


async def test_a_persisted_document_needs_a_token_like_any_request(client, token):
    response = await client.post("/graphql", json={"extensions": apq(ME)})
    refused(response, 401, "UNAUTHENTICATED")


async def test_a_document_registered_through_one_process_is_found_by_another(pool, settings, token, lean_path):
    # Two apps with their own caches and one database, as two processes or replicas have.
    async with (
        _client(pool, settings, lean_path=lean_path) as first,
        _client(pool, settings, lean_path=lean_path) as second,
    ):
        refused(await post(second, token, extensions=apq(ME)), 200, "PERSISTED_QUERY_NOT_FOUND")
        assert data(await post(first, token, query=ME, extensions=apq(ME))) == ME_DATA
        assert data(await post(second, token, extensions=apq(ME))) == ME_DATA


# Trusted documents.


async def test_trusted_mode_refuses_a_query_text_before_parsing_it(trusted_client, token, pool):
    # A text that would not even parse: refused for being a text, not for its syntax.
    for body in ({"query": "{ viewer {"}, {"query": ME, "extensions": apq(ME)}):
        error = refused(await post(trusted_client, token, **body), 400, "TRUSTED_DOCUMENT_REQUIRED")
        assert "incidents documents register" in error["message"]
    refused(await get(trusted_client, token, query=ME), 400, "TRUSTED_DOCUMENT_REQUIRED")
    assert await stored(pool) == []


async def test_trusted_mode_refuses_a_body_its_json_parser_does_not_read(trusted_client, token, client):
    # Python's json module reads NaN, which orjson refuses: the text must not slip past the check.
    body = b'{"query": "query Me { viewer { name } }", "variables": {"x": NaN}}'
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    refused(await trusted_client.post("/graphql", content=body, headers=headers), 400, "BAD_REQUEST")
    assert data(await client.post("/graphql", content=body, headers=headers)) == ME_DATA  # the same, untrusted


async def test_trusted_mode_runs_only_trusted_documents(trusted_client, token, pool, client):
    # given ME registered by APQ (untrusted) and a trusted document
    await post(client, token, query=ME, extensions=apq(ME))
    trusted = "query Trusted { viewer { name } }"
    await trust(pool, trusted)
    # then an unknown hash and an untrusted one are not found
    refused(await post(trusted_client, token, extensions=apq("{ nope }")), 200, "PERSISTED_QUERY_NOT_FOUND")
    refused(await post(trusted_client, token, extensions=apq(ME)), 200, "PERSISTED_QUERY_NOT_FOUND")
    # and the trusted one runs by APQ's hash, by documentId (prefixed or bare), and over GET
    assert data(await post(trusted_client, token, extensions=apq(trusted))) == ME_DATA
    assert data(await post(trusted_client, token, documentId=f"sha256:{sha256(trusted)}")) == ME_DATA
    assert data(await post(trusted_client, token, documentId=sha256(trusted))) == ME_DATA
    assert data(await get(trusted_client, token, documentId=f"sha256:{sha256(trusted)}")) == ME_DATA


async def test_a_document_trusted_after_apq_registered_it_runs_in_trusted_mode(trusted_client, token, pool, client):
    await post(client, token, query=ME, extensions=apq(ME))
    refused(await post(trusted_client, token, extensions=apq(ME)), 200, "PERSISTED_QUERY_NOT_FOUND")
    await trust(pool, ME)
    assert await stored(pool) == [(sha256(ME), True)]
    assert data(await post(trusted_client, token, extensions=apq(ME))) == ME_DATA


# The command line (one path is enough: it only writes the table).


@pytest.fixture
def manifests(tmp_path):
    queries = {
        "relay": "query RelayMe {\n  viewer {\n    name\n  }\n}\n",
        "codegen": "query CodegenMe { viewer { name } }",
        "apollo": "query ApolloMe {\n  viewer {\n    name\n  }\n}",
    }
    files = {
        # relay-compiler's persistConfig file with "algorithm": "SHA256"
        "relay": {sha256(queries["relay"]): queries["relay"]},
        # GraphQL Code Generator's client preset, persistedDocuments with hashAlgorithm sha256
        "codegen": {sha256(queries["codegen"]): queries["codegen"]},
        # @apollo/generate-persisted-query-manifest
        "apollo": {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": sha256(queries["apollo"]), "name": "ApolloMe", "type": "query", "body": queries["apollo"]}
            ],
        },
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(content))
    return paths, queries


@pytest.mark.parametrize("lean_path", [True], ids=["lean-path"])
async def test_register_reads_relay_codegen_and_apollo_manifests(database_url, pool, manifests, trusted_client, token):
    paths, queries = manifests
    for name in ("relay", "codegen", "apollo"):
        out = ok(await run_cli(database_url, "documents", "register", str(paths[name])))
        assert f"sha256:{sha256(queries[name])}" in out and ": new" in out, out
        assert "1 trusted document(s): 1 new" in out, out
        assert data(await post(trusted_client, token, extensions=apq(queries[name]))) == ME_DATA
    assert sorted(await stored(pool)) == sorted((sha256(q), True) for q in queries.values())
    # idempotent
    again = ok(await run_cli(database_url, "documents", "register", str(paths["apollo"])))
    assert "ApolloMe: already trusted" in again, again
    listed = ok(await run_cli(database_url, "documents", "list", "--trusted"))
    assert "RelayMe" in listed and "CodegenMe" in listed and "ApolloMe" in listed and "3 document(s)" in listed


@pytest.mark.parametrize("lean_path", [True], ids=["lean-path"])
async def test_register_trusts_a_document_apq_registered(database_url, pool, client, token, tmp_path):
    await post(client, token, query=ME, extensions=apq(ME))
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({sha256(ME): ME}))
    out = ok(await run_cli(database_url, "documents", "register", str(path)))
    assert "Me: now trusted" in out, out
    assert await stored(pool) == [(sha256(ME), True)]


async def test_register_refuses_ids_that_are_not_the_sha256_of_the_body_and_registers_nothing(
    database_url, pool, tmp_path
):
    good = "query Good { viewer { name } }"
    relay_md5 = hashlib.md5(ME.encode()).hexdigest()  # Relay's default id
    codegen_sha1 = hashlib.sha1(ME.encode()).hexdigest()  # GraphQL Code Generator's default id
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({sha256(good): good, relay_md5: ME, codegen_sha1: ME, sha256("other"): ME}))
    error = failed_cleanly(await run_cli(database_url, "documents", "register", str(path)))
    assert "3 of 4 document(s) refused, nothing was registered" in error, error
    assert '"algorithm": "SHA256"' in error and "hashAlgorithm: 'sha256'" in error, error
    assert "not the SHA-256 of its body" in error, error
    assert await stored(pool) == []


async def test_register_refuses_an_unknown_manifest_clearly(database_url, tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format": "something-else", "version": 1, "operations": []}))
    assert "unknown manifest format" in failed_cleanly(await run_cli(database_url, "documents", "register", str(path)))
    path.write_text("[1, 2]")
    assert "a manifest is a JSON object" in failed_cleanly(
        await run_cli(database_url, "documents", "register", str(path))
    )
