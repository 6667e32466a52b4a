"""One error envelope for every answer of /graphql, whatever its status.

Each is a GraphQL response in the media type the client accepted, {"errors": [{message,
extensions: {code, ...}}]}, with the request id in X-Request-Id, and Retry-After when a retry
may succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import httpx
import pytest

from app import db
from app.cli import uvicorn_options
from app.config import Settings
from app.domain import users
from app.server import create_app
from tests.proxy import PgProxy

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
ACCEPTS = [JSON, GRAPHQL_RESPONSE]
VIEWER = {"query": "{ viewer { name } }"}
ORIGIN = "https://soc.example"


@pytest.fixture(params=ACCEPTS, ids=["json", "graphql-response"])
def accept(request) -> str:
    return request.param


@pytest.fixture
async def token(pool) -> str:
    """A token of a user who may do everything (for answers made before either path runs)."""
    async with pool.acquire() as conn:
        return await users.add_user(conn=conn, name="admin", grants=[("*", "write")])


@contextlib.asynccontextmanager
async def _client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


def _app(pool, settings: Settings, **overrides):
    return create_app(Settings(**{**settings.__dict__, **overrides}), pool=pool)


def _assert_error(response: httpx.Response, status: int, code: str, accept: str) -> dict:
    """The envelope of one error: its status, media type, code and request id; its error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == accept, response.headers
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", request_id)
    body = response.json()
    assert "data" not in body or status == 200, body
    [error] = body["errors"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["extensions"]["code"] == code, error
    assert error["extensions"].get("requestId", request_id) == request_id
    return error


def _headers(accept: str, token: str | None = None, **more: str) -> dict:
    headers = {"Accept": accept, "Content-Type": "application/json", **more}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


# --- 200 and 400: GraphQL's own answers --------------------------------------------------------


async def test_a_successful_answer_has_the_accepted_type_and_a_request_id(admin, accept):
    response = await admin.client.post("/graphql", json=VIEWER, headers=_headers(accept, admin.token))

    assert response.status_code == 200
    assert response.headers["content-type"] == accept
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["x-request-id"])
    assert response.json()["data"] == {"viewer": {"name": "admin"}}


# A @oneOf input in a variable: strawberry checks it past graphql-core's own coercion errors.
ONE_OF = """mutation($t: LinkTarget!) {
  linkAlerts(alertIds: ["alert_1"], target: $t, comment: "why") { errors { code } }
}"""


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ viewer { name }", {}, "GRAPHQL_PARSE_FAILED"),
        ("{ viewer { " + "name " * 5001 + "} }", {}, "GRAPHQL_PARSE_FAILED"),  # over the token limit
        ("{ viewer { nope } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int) { viewer { name } }", {}, "GRAPHQL_VALIDATION_FAILED"),  # $n never used
        ('{ incidents(first: "ten") { totalCount } }', {}, "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int) { incidents(first: $n) { totalCount } }", {"n": "ten"}, "BAD_USER_INPUT"),
        ("query($id: ID!) { alert(id: $id) { id } }", {}, "BAD_USER_INPUT"),  # required, not given
        (ONE_OF, {"t": {"existingIncidentId": "inc_1", "createNew": True}}, "BAD_USER_INPUT"),
        (ONE_OF, {"t": {}}, "BAD_USER_INPUT"),
        (ONE_OF, {"t": {"createNew": None}}, "BAD_USER_INPUT"),
    ],
    ids=[
        "parse",
        "tokens",
        "unknown-field",
        "unused-variable",
        "literal",
        "variable-type",
        "missing-variable",
        "one-of-both",
        "one-of-none",
        "one-of-null",
    ],
)
async def test_request_errors_have_a_code_and_are_400_only_in_graphql_response(admin, accept, query, variables, code):
    """GraphQL over HTTP: a request error is HTTP 400 without data in application/graphql-response+json,
    and stays 200 in application/json."""
    response = await admin.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=_headers(accept, admin.token)
    )

    error = _assert_error(response, 200 if accept == JSON else 400, code, accept)
    assert "path" not in error
    assert ("data" in response.json()) is (accept == JSON)


async def test_an_error_while_resolving_keeps_its_code_and_status_200(admin, accept):
    response = await admin.client.post(
        "/graphql",
        json={"query": '{ incidents(after: "forged") { totalCount } }'},
        headers=_headers(accept, admin.token),
    )

    error = _assert_error(response, 200, "BAD_USER_INPUT", accept)
    assert error["path"] == ["incidents"]


async def test_a_body_that_is_not_json_is_400_bad_request(pool, settings, token, accept):
    async with _client(_app(pool, settings)) as c:
        response = await c.post("/graphql", content=b'{"query": ', headers=_headers(accept, token))

    _assert_error(response, 400, "BAD_REQUEST", accept)


@pytest.mark.parametrize("lean", [True, False], ids=["lean-path", "graphql-core"])
async def test_a_batch_is_400_bad_request(pool, settings, token, accept, lean):
    """A JSON array of requests (Apollo's BatchHttpLink) is refused as a whole: nothing runs."""
    async with _client(_app(pool, settings, lean_path=lean)) as c:
        response = await c.post("/graphql", json=[VIEWER, VIEWER], headers=_headers(accept, token))

    _assert_error(response, 400, "BAD_REQUEST", accept)


# --- Answered before GraphQL runs --------------------------------------------------------------


async def test_500_when_something_unexpected_fails_before_graphql_runs(pool, settings, token, accept, monkeypatch):
    """A bug in the token lookup: the envelope says only "unexpected" and the request id, which
    the log has with the traceback."""

    async def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(users, "viewer_for_token", broken)
    async with _client(_app(pool, settings)) as c:
        response = await c.post("/graphql", json=VIEWER, headers=_headers(accept, token))

    error = _assert_error(response, 500, "INTERNAL_SERVER_ERROR", accept)
    assert "a bug" not in response.text
    assert error["extensions"]["requestId"] in error["message"]


@pytest.mark.parametrize("authorization", [None, "Bearer igt_unknown", "Basic abc"], ids=["none", "unknown", "basic"])
async def test_401_without_a_valid_token(pool, settings, accept, authorization):
    headers = _headers(accept) | ({"Authorization": authorization} if authorization else {})
    async with _client(_app(pool, settings)) as c:
        response = await c.post("/graphql", json=VIEWER, headers=headers)

    _assert_error(response, 401, "UNAUTHENTICATED", accept)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_405_for_a_method_other_than_get_and_post(pool, settings, token, accept, method):
    async with _client(_app(pool, settings)) as c:
        response = await c.request(method, "/graphql", json=VIEWER, headers=_headers(accept, token))

    _assert_error(response, 405, "METHOD_NOT_ALLOWED", accept)
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("streamed", [False, True], ids=["announced", "streamed"])
async def test_413_for_a_body_over_the_limit(pool, settings, token, accept, streamed):
    body = b'{"query": "{ viewer { name } }", "pad": "' + b"x" * 2048 + b'"}'

    async def chunks():
        for n in range(0, len(body), 512):
            yield body[n : n + 512]

    async with _client(_app(pool, settings, max_body_bytes=1024)) as c:
        response = await c.post("/graphql", content=chunks() if streamed else body, headers=_headers(accept, token))

    _assert_error(response, 413, "PAYLOAD_TOO_LARGE", accept)


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/graphql", "application/x-www-form-urlencoded"]
)
async def test_415_for_a_post_that_is_not_json(pool, settings, token, accept, content_type):
    headers = {"Accept": accept, "Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    async with _client(_app(pool, settings)) as c:
        response = await c.post("/graphql", content=b"{ viewer { name } }", headers=headers)

    _assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", accept)


async def test_json_with_a_charset_is_json(pool, settings, token, accept):
    headers = _headers(accept, token) | {"Content-Type": "application/json; charset=utf-8"}
    async with _client(_app(pool, settings)) as c:
        response = await c.post("/graphql", json=VIEWER, headers=headers)

    assert response.status_code == 200
    assert response.json()["data"] == {"viewer": {"name": "admin"}}


@contextlib.asynccontextmanager
async def _request_in_flight(c: httpx.AsyncClient, token: str):
    """A request whose body arrives only when the block ends: it holds its slot until then.
    Yields the task that answers it."""
    reading, release = asyncio.Event(), asyncio.Event()

    async def slow_body():
        yield b'{"query": "{ viewer { name } }"'
        reading.set()
        await release.wait()
        yield b"}"

    task = asyncio.create_task(c.post("/graphql", content=slow_body(), headers=_headers(JSON, token)))
    await asyncio.wait_for(reading.wait(), 10)
    try:
        yield task
    finally:
        release.set()
        await asyncio.wait_for(task, 10)


async def test_503_over_the_concurrency_limit_then_served_again(pool, settings, token, accept):
    async with _client(_app(pool, settings, max_concurrency=1)) as c:
        async with _request_in_flight(c, token) as first:
            busy = await c.post("/graphql", json=VIEWER, headers=_headers(accept, token))
        after = await c.post("/graphql", json=VIEWER, headers=_headers(accept, token))

    error = _assert_error(busy, 503, "SERVER_BUSY", accept)
    assert error["extensions"]["retryable"] is True
    assert error["extensions"]["requestId"] == busy.headers["x-request-id"]
    assert busy.headers["retry-after"] == "1"
    assert first.result().json()["data"] == {"viewer": {"name": "admin"}}
    assert after.json()["data"] == {"viewer": {"name": "admin"}}


def test_uvicorn_does_not_shed_load_itself(settings):
    """Its limit_concurrency answers a plain-text 503 without CORS headers: the app sheds load."""
    assert "limit_concurrency" not in uvicorn_options(settings, "127.0.0.1", 8000)


async def test_503_when_the_database_is_unavailable(database_url, settings, token, accept):
    proxy = await PgProxy.start(database_url)
    tuned = Settings(**{**settings.__dict__, "pool_min": 1, "pool_max": 1, "pool_timeout": 2})
    p = await db.create_pool(proxy.url, tuned)
    try:
        await proxy.close()  # the database goes away: its connection is cut, new ones are refused
        async with _client(create_app(tuned, pool=p)) as c:
            response = await asyncio.wait_for(c.post("/graphql", json=VIEWER, headers=_headers(accept, token)), 20)
    finally:
        p.terminate()

    error = _assert_error(response, 503, "DATABASE_UNAVAILABLE", accept)
    assert error["extensions"]["retryable"] is True
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert response.headers["retry-after"] == "1"


# --- CORS --------------------------------------------------------------------------------------


async def test_cors_preflight_and_answers_expose_retry_after_and_the_request_id(pool, settings, token):
    app = _app(pool, settings, cors_origins=(ORIGIN,), max_concurrency=1)
    async with _client(app) as c:
        preflight = await c.options(
            "/graphql",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        ok = await c.post("/graphql", json=VIEWER, headers=_headers(JSON, token, Origin=ORIGIN))
        unauthenticated = await c.post("/graphql", json=VIEWER, headers=_headers(JSON, Origin=ORIGIN))
        async with _request_in_flight(c, token):
            busy = await c.post("/graphql", json=VIEWER, headers=_headers(JSON, token, Origin=ORIGIN))

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert {"GET", "POST"} <= set(preflight.headers["access-control-allow-methods"].split(", "))
    assert [ok.status_code, unauthenticated.status_code, busy.status_code] == [200, 401, 503]
    for response in (ok, unauthenticated, busy):
        assert response.headers["access-control-allow-origin"] == ORIGIN
        exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
        assert {"retry-after", "x-request-id"} <= exposed
        assert response.headers["x-request-id"]
    assert busy.headers["retry-after"] == "1"
