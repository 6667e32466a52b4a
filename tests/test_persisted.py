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


async def stored_for(pool, name: str) -> list[str]:
    """The ids of the untrusted documents stored for the user so named, oldest first."""
    rows = await pool.fetch(
        "SELECT encode(d.sha256, 'hex') AS hex FROM persisted_documents d JOIN users u ON u.id = d.registered_by"
        " WHERE NOT d.trusted AND u.name = $1 ORDER BY d.created_at",
        name,
    )
    return [r["hex"] for r in rows]


@pytest.fixture
async def other_token(pool) -> str:
    """A second user, who may read nothing."""
    async with pool.acquire() as conn:
        return await users.add_user(conn=conn, name="nobody", grants=[])


def without_request_id(response: httpx.Response) -> tuple[int, dict]:
    body = response.json()
    for error in body.get("errors", []):
        error.get("extensions", {}).pop("requestId", None)
    return response.status_code, body


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


@pytest.mark.parametrize(
    "text",
    ["query Me { viewer { name } } # \x00", 'query { incidents(filter: {search: "\x00"}) { totalCount } }'],
    ids=["in-a-comment", "in-a-string"],
)
async def test_a_document_with_a_nul_runs_as_without_apq_and_is_not_stored(client, token, pool, text):
    # given a text GraphQL parses but PostgreSQL's text cannot hold (it used to be a 500)
    plain = await post(client, token, query=text)
    # when a client sends it with its hash
    with_hash = await post(client, token, query=text, extensions=apq(text))
    # then it gets the very answer it gets without APQ, and nothing is stored
    assert without_request_id(with_hash) == without_request_id(plain)
    assert with_hash.status_code != 500, with_hash.text
    assert await stored(pool) == []
    refused(await post(client, token, extensions=apq(text)), 200, "PERSISTED_QUERY_NOT_FOUND")


async def test_apq_evicts_a_user_s_oldest_document_past_the_user_s_quota(client, token, other_token, pool, monkeypatch):
    monkeypatch.setattr(persisted, "MAX_REMEMBERED_PER_USER", 2)
    # given another user's document, and this user's quota full
    await post(client, other_token, query=ME, extensions=apq(ME))
    texts = [f"query Q{n} {{ viewer {{ name }} }}" for n in range(3)]
    for text in texts[:2]:
        assert data(await post(client, token, query=text, extensions=apq(text))) == ME_DATA
    # when the user registers one more
    assert data(await post(client, token, query=texts[2], extensions=apq(texts[2]))) == ME_DATA
    # then the user's oldest made room for it, and the other user's document stays
    assert await stored_for(pool, "admin") == [sha256(texts[1]), sha256(texts[2])]
    assert await stored_for(pool, "nobody") == [sha256(ME)]


async def test_one_user_filling_the_apq_cap_never_turns_apq_off_for_others(
    pool, settings, token, other_token, monkeypatch
):
    monkeypatch.setattr(persisted, "MAX_REMEMBERED", 3)
    async with _client(pool, settings) as client:
        # given a user without grants who filled the whole cap with junk that parses
        for n in range(3):
            junk = f"query Junk{n} {{ viewer {{ name }} }} # {'x' * 50}"
            await post(client, other_token, query=junk, extensions=apq(junk))
        # when another user registers a document
        assert data(await post(client, token, query=ME, extensions=apq(ME))) == ME_DATA
        # then it was stored (the oldest junk made room) and its hash alone runs it
        assert data(await post(client, token, extensions=apq(ME))) == ME_DATA
    assert len(await stored(pool)) == 3
    assert sha256("query Junk0 { viewer { name } } # " + "x" * 50) not in await stored_for(pool, "nobody")


async def test_a_user_never_learns_whether_another_user_sent_a_text(client, token, other_token, pool):
    # given the admin's search, with its literal inline
    secret = 'query { incidents(filter: {search: "acme merger"}) { totalCount } }'
    before = await post(client, other_token, extensions=apq(secret))
    assert data(await post(client, token, query=secret, extensions=apq(secret))) == {"incidents": {"totalCount": 0}}
    assert data(await post(client, token, extensions=apq(secret))) == {"incidents": {"totalCount": 0}}  # cached now
    # when another user sends its hash alone, on the process that cached it or another
    after = await post(client, other_token, extensions=apq(secret))
    # then the answer is the one before the admin's search
    assert without_request_id(after) == without_request_id(before)
    refused(after, 200, "PERSISTED_QUERY_NOT_FOUND")
    # and that user registers the text for themselves like anyone else
    await post(client, other_token, query=secret, extensions=apq(secret))
    assert await stored_for(pool, "nobody") == [sha256(secret)] == await stored_for(pool, "admin")


async def test_a_trusted_document_is_found_by_every_user_and_never_copied(client, token, other_token, pool):
    await trust(pool, ME)
    assert data(await post(client, token, extensions=apq(ME))) == ME_DATA
    assert data(await post(client, other_token, extensions=apq(ME))) == {"viewer": {"name": "nobody"}}
    assert data(await post(client, other_token, query=ME, extensions=apq(ME))) == {"viewer": {"name": "nobody"}}
    assert await stored(pool) == [(sha256(ME), True)]


async def test_a_cached_document_is_stored_again_after_the_documented_delete(pool, settings, token):
    async with _client(pool, settings) as first, _client(pool, settings) as second:
        # given a document the first process stored and cached
        assert data(await post(first, token, query=ME, extensions=apq(ME))) == ME_DATA
        # when the APQ documents are deleted, as docs/persisted-documents.md says they may be
        await pool.execute("DELETE FROM persisted_documents WHERE NOT trusted")
        refused(await post(second, token, extensions=apq(ME)), 200, "PERSISTED_QUERY_NOT_FOUND")
        # and the client's retry with the text lands on the first process
        assert data(await post(first, token, query=ME, extensions=apq(ME))) == ME_DATA
        # then it is stored again, and the second process finds it
        assert data(await post(second, token, extensions=apq(ME))) == ME_DATA
    assert await stored(pool) == [(sha256(ME), False)]


async def test_the_refusals_use_the_media_type_the_client_accepted(client, token):
    # HTTP 200 even in graphql-response+json: Apollo's link turns APQ off for good on a 400 or 500
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
async def test_register_trusts_a_document_apq_registered(database_url, pool, client, token, other_token, tmp_path):
    # given two users' own copies of ME, registered through APQ
    await post(client, token, query=ME, extensions=apq(ME))
    await post(client, other_token, query=ME, extensions=apq(ME))
    assert await stored(pool) == [(sha256(ME), False), (sha256(ME), False)]
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


async def test_register_refuses_a_document_with_a_nul_and_registers_nothing(database_url, pool, tmp_path):
    # given a manifest whose one document holds a NUL in a comment (GraphQL parses it)
    good = "query Good { viewer { name } }"
    with_nul = "query Me { viewer { name } } # \x00"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({sha256(good): good, sha256(with_nul): with_nul}))
    # when it is registered, then the command names the problem, and nothing is registered
    error = failed_cleanly(await run_cli(database_url, "documents", "register", str(path)))
    assert "1 of 2 document(s) refused, nothing was registered" in error, error
    assert f"{sha256(with_nul)}: its body holds a NUL character (U+0000)" in error, error
    assert await stored(pool) == []


async def test_register_refuses_an_unknown_manifest_clearly(database_url, tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format": "something-else", "version": 1, "operations": []}))
    assert "unknown manifest format" in failed_cleanly(await run_cli(database_url, "documents", "register", str(path)))
    path.write_text("[1, 2]")
    assert "a manifest is a JSON object" in failed_cleanly(
        await run_cli(database_url, "documents", "register", str(path))
    )
