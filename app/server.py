"""The ASGI app: /graphql (GraphiQL on GET), /healthz, /readyz, /metrics.

Every GraphQL request is authenticated with `Authorization: Bearer <token>`; without a valid
token it gets HTTP 401 and an UNAUTHENTICATED error. The GraphiQL page itself (a GET without a
query) needs no token: paste it into GraphiQL's headers editor.

Every answer of /graphql is a GraphQL response in the media type the client accepted, errors
included (error_response: 400, 401, 405, 413, 415, 500, 503), with its request id in
X-Request-Id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hmac
import json
import logging
import os
import uuid
from datetime import timedelta

import asyncpg
import orjson
from cross_web import HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.http.streaming import SSETransport
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.types.unset import UNSET

from app import config, db, metrics, observe, web
from app.api import background, change_renders
from app.api.change_renders import SharedData
from app.api.context import Context
from app.api.encoding import json_bytes
from app.api.errors import MESSAGES, translate
from app.api.lean import LeanPath
from app.api.limits import Limits
from app.api.loaders import Loaders
from app.api.persisted import DocumentRefused, PersistedDocuments
from app.api.schema import build_schema
from app.config import DEMO_TOKEN_VARIABLE, Settings
from app.domain import evidence, ingestion, trigram_indexes, users
from app.domain.viewers import Viewer
from app.health import Readiness
from app.listener import Listener
from app.live import Feed
from app.token_cache import TokenCache

log = logging.getLogger("app.server")


class _Heartbeats(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws with the server's pings every LIVE_HEARTBEAT_SECONDS: a connection
    that a proxy or a dead peer dropped without a FIN is found, and idle ones stay open through
    proxies that close quiet connections (clients answer with a pong, as the protocol asks)."""

    interval: float = 15.0
    recheck: float = 30.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The extensions each running operation's last `next` carried (_shared_frame), its own.
        self.shared_extensions: dict[Operation, str] = {}

    async def handle(self) -> None:

        async def ping() -> None:
            while True:
                await asyncio.sleep(self.interval)
                if self.connection_acknowledged:
                    await self.send_message({"type": "ping"})

        loop = asyncio.get_running_loop()
        beats = loop.create_task(ping())
        access = loop.create_task(self._watch_access())
        try:
            await super().handle()
        finally:
            beats.cancel()
            access.cancel()

    async def _watch_access(self) -> None:
        """Close the socket with 4403 once its token no longer authenticates: checked at every
        access change the feed hears of, and every LIVE_RECHECK_SECONDS anyway."""
        feed: Feed | None = self.context.live
        changed = asyncio.Event()
        if feed is not None:
            feed.watch_access(changed.set)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.recheck):
                        await changed.wait()
                changed.clear()
                if self.context.token is None:
                    continue  # before connection_init: nobody to check
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                    if await users.viewer_for_token(conn=self.context.pool, token=self.context.token) is None:
                        # Its subscriptions heard the same change: let them send their UNAUTHENTICATED first.
                        for _ in range(20):
                            if not self.operations:
                                break
                            await asyncio.sleep(0.05)
                        await self.websocket.close(code=4403, reason="Forbidden: the API token was revoked")
                        return
        finally:
            if feed is not None:
                feed.unwatch_access(changed.set)

    async def run_operation(self, operation: Operation) -> None:
        # The operation's own task: its subscription sends its group's payloads itself.
        if change_renders.sends_as_rendered(self.schema):
            change_renders.DIRECT.set(functools.partial(self._send_shared, operation))
        try:
            await super().run_operation(operation)
        finally:
            self.shared_extensions.pop(operation, None)

    async def send_message(self, message) -> None:
        frame = self._shared_frame(message)
        if frame is None:
            await super().send_message(message)
        else:
            await self.websocket.send_text(frame)

    def _shared_frame(self, message) -> str | None:
        """A `next` message whose data is a group's rendering (change_renders.SharedData), from
        the data's JSON encoded once for the group and the operation's extensions, kept on the
        operation for the events it sends as they are (_send_shared)."""
        if message.get("type") != "next" or len(message) != 3:
            return None
        operation = self.operations.get(message.get("id"))
        payload = message.get("payload")
        if operation is None or type(payload) is not dict or not isinstance(data := payload.get("data"), SharedData):
            return None
        if operation.task is not asyncio.current_task():
            return None  # not sent by the operation's own task: an id reused meanwhile
        if not payload.keys() <= {"data", "extensions"}:
            return None
        extensions = payload.get("extensions")
        encoded = self.shared_extensions[operation] = json_bytes(extensions).decode() if extensions else ""
        return _next_frame(operation.id, data.encoded(), encoded)

    async def _send_shared(self, operation: Operation, data: SharedData) -> bool:
        """The group's rendering as this operation's `next` message, with the extensions its own
        pipeline gave its last one (change_renders.PROVEN_HOOKS: the same for each of its events);
        False (take the pipeline) before it sent one, and once it completed."""
        extensions = self.shared_extensions.get(operation)
        if extensions is None or operation.completed:
            return False
        try:
            await self.websocket.send_text(_next_frame(operation.id, data.encoded(), extensions))
        except (WebSocketDisconnected, RuntimeError):
            # The socket closed (the peer went, or the server closed it): the operation ends as the
            # handler cancels it, not with an error sent into a closed socket.
            raise asyncio.CancelledError from None
        return True

    async def handle_subscribe(self, message) -> None:
        # Only subscriptions: a query or mutation here would run as the viewer of connection_init,
        # past ConcurrencyLimit. graphql-ws clients take an error message as that operation's end.
        payload = message.get("payload") or {}
        if self.connection_acknowledged and not _runs_as_subscription(
            payload.get("query"), payload.get("operationName")
        ):
            error = {"message": WS_SUBSCRIPTIONS_ONLY, "extensions": {"code": "BAD_REQUEST"}}
            await self.send_message({"id": message["id"], "type": "error", "payload": [error]})
            return
        await super().handle_subscribe(message)


WS_SUBSCRIPTIONS_ONLY = (
    "The WebSocket runs subscriptions only: send queries and mutations as HTTP requests to /graphql."
)
SSE_SUBSCRIPTIONS_ONLY = (
    "Accept: text/event-stream serves subscriptions only: send queries and mutations with Accept: application/json."
)


def _runs_as_subscription(query: object, operation_name: object) -> bool:
    """Whether the document's operation is a subscription; True too for a document that cannot
    run at all (not text, a syntax error), which the normal path refuses with its own error."""
    if not isinstance(query, str):
        return True
    try:
        document = parse(query)
    except GraphQLError:
        return True
    operation = get_operation_ast(document, operation_name if isinstance(operation_name, str) else None)
    return operation is not None and operation.operation == OperationType.SUBSCRIPTION


class _TextFrames(ASGIWebSocketAdapter):
    """graphql-transport-ws's messages as text frames, as the protocol says (the app's JSON
    encoder gives bytes, which strawberry would send as binary frames)."""

    async def send_json(self, message) -> None:
        await self.send_text(self.view.encode_json_string(message))

    async def send_text(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


def _next_frame(operation_id: str, data: str, extensions: str) -> str:
    """graphql-transport-ws's `next` message from its parts' JSON (extensions: "" for none)."""
    more = ',"extensions":' + extensions if extensions else ""
    return '{"id":' + json.dumps(operation_id) + ',"type":"next","payload":{"data":' + data + more + "}}"


# Nobody, until connection_init names a token: a WebSocket's context is made before that.
_NOBODY = Viewer(id=0, name="", can_view_incidents=False, can_ingest=False)


class GraphQLApp(GraphQL):
    websocket_adapter_class = _TextFrames

    def __init__(self, settings: Settings) -> None:
        limits = Limits.from_settings(settings)
        super().__init__(
            build_schema(limits),
            graphql_ide="graphiql",
            allow_queries_via_get=True,
            # Live updates: graphql-transport-ws (graphql-ws's protocol), and graphql-sse's distinct
            # connections mode for clients that cannot open a WebSocket (an Accept: text/event-stream
            # request to /graphql).
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=10),
            # Operations in flight on one WebSocket: subscriptions only (_Heartbeats.handle_subscribe).
            max_subscriptions_per_connection=settings.live_max_subscriptions_per_connection,
            allowed_origins=settings.cors_origins,
        )
        heartbeat = settings.live_heartbeat_seconds
        self.graphql_transport_ws_handler_class = type(
            "Heartbeats", (_Heartbeats,), {"interval": heartbeat, "recheck": settings.live_recheck_seconds}
        )
        self.stream_transport_classes_by_protocol = {
            GRAPHQL_SSE_PROTOCOL: type("SSEHeartbeats", (SSETransport,), {"heartbeat_interval": heartbeat}),
        }
        self.settings = settings
        self.correlation = ingestion.Correlation.of(settings)
        self.lean = LeanPath(self.schema._schema, limits)
        self.persisted = PersistedDocuments(trusted_only=settings.trusted_documents_only)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope = _answer_as_json_when_accepted(scope)
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as exc:  # malformed requests: GraphQL errors, never plain text
            code = HTTP_CODES.get(exc.status_code, "BAD_REQUEST")
            response = error_response(scope, exc.status_code, exc.reason, {"code": code})
        else:
            if GRAPHQL_RESPONSE in request.headers.get("accept", "") and response.media_type != "text/html":
                response = _as_graphql_response(response)
        await response(scope, receive, send)

    async def process_result(self, request: Request, result):
        if result.errors:
            codes = observe.observation(request.scope).codes
            codes.extend((e.extensions or {}).get("code", "INTERNAL_SERVER_ERROR") for e in result.errors)
        return await super().process_result(request, result)

    async def get_context(self, request, response) -> Context | None:
        if isinstance(request, WebSocket):
            return self._websocket_context(request)
        # None only for the GraphiQL page, which strawberry asks a context for but never executes.
        return getattr(request.state, "context", None)

    def _websocket_context(self, websocket: WebSocket) -> Context:
        """A WebSocket's context, for nobody until on_ws_connect reads the token."""
        settings = self.settings
        state = websocket.app.state
        return Context(
            pool=db.Database(state.pool, settings.pool_timeout, settings.connections_per_request),
            viewer=_NOBODY,
            request_id=uuid.uuid4().hex[:16],
            correlation=self.correlation,
            live=getattr(state, "live", None),
            streams=True,
        )

    async def on_ws_connect(self, context: Context):
        """graphql-transport-ws's connection_init: its payload's `authorization` ("Bearer <token>")
        or `token` names the viewer; without a valid one the socket is closed with 4403."""
        params = context.connection_params or {}
        raw = params.get("authorization") or params.get("Authorization") or params.get("token") or ""
        token = raw.partition(" ")[2].strip() if isinstance(raw, str) and " " in raw else str(raw).strip()
        viewer = await users.viewer_for_token(conn=context.pool, token=token) if token else None
        if viewer is None:
            raise ConnectionRejectionError({"message": "The API token is missing, unknown or revoked."})
        if self.settings.trusted_documents_only:
            # graphql-transport-ws carries query texts: this server runs registered documents only.
            raise ConnectionRejectionError({"message": "This server runs registered documents only."})
        context.viewer = viewer
        context.token = token
        context.loaders = Loaders(context.pool, viewer)
        context.observation.viewer = viewer.name
        return UNSET  # a connection_ack without a payload

    def encode_json(self, data: object) -> bytes:
        return json_bytes(data)

    async def render_graphql_ide(self, request: Request) -> Response:
        return web.graphiql_page(request, self.graphql_ide_html)


GRAPHQL_RESPONSE = "application/graphql-response+json"
# The codes of strawberry's refusals of malformed requests, by HTTP status.
HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE"}
ALLOWED_METHODS = ("GET", "POST")


def media_type(accept: str) -> str:
    """The GraphQL-over-HTTP media type of every answer: graphql-response+json when accepted."""
    return GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accept else "application/json"


def request_id(scope: Scope) -> str:
    """The request's id, given by RequestId (a fresh one for a scope that never passed it)."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        # Ours: a client-sent id could collide or forge log lines.
        state["request_id"] = uuid.uuid4().hex[:16]
    return state["request_id"]


def error_response(scope: Scope, status: int, message: str, extensions: dict, headers: dict | None = None) -> Response:
    """A GraphQL response of one error with its code and the request id, in the media type the
    client accepted: every answer of /graphql that GraphQL did not make itself."""
    error = {"message": message, "extensions": {**extensions, "requestId": request_id(scope)}}
    accept = Headers(scope=scope).get("accept", "")
    response = _ErrorResponse(orjson.dumps({"errors": [error]}), status, headers=headers, media_type=media_type(accept))
    response.code = extensions["code"]
    return response


class _ErrorResponse(Response):
    """Counts its code in the request's observation when it is sent (BodyLimit makes one for
    every request, and sends it only for a body too large)."""

    code: str

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        observe.observation(scope).codes.append(self.code)
        await super().__call__(scope, receive, send)


def _as_graphql_response(response: Response) -> Response:
    """GraphQL over HTTP's own media type: a request error (parse, validation, variables: errors
    without a path and no data) is HTTP 400 without a data entry; anything executed stays 200."""
    status = response.status_code
    body = response.body
    if status == 200:
        try:
            result = orjson.loads(body)
        except orjson.JSONDecodeError:
            result = None
        errors = result.get("errors") if isinstance(result, dict) else None
        if errors and result.get("data") is None and all("path" not in e for e in errors):
            result.pop("data", None)
            status, body = 400, orjson.dumps(result)
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(body, status_code=status, headers=headers, media_type=GRAPHQL_RESPONSE)


def _unauthenticated(scope: Scope, message: str) -> Response:
    return error_response(scope, 401, message, {"code": "UNAUTHENTICATED"}, {"WWW-Authenticate": "Bearer"})


def _unsupported_content_type(request: Request) -> bool:
    """A POST whose body is not application/json (the only one the API reads): 415."""
    content_type = request.headers.get("content-type", "")
    return request.method == "POST" and content_type.partition(";")[0].strip().lower() != "application/json"


def _wants_ide(request: Request) -> bool:
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "text/html" in request.headers.get("accept", "")
    )


def _answer_as_json_when_accepted(scope: Scope) -> Scope:
    """A request that accepts JSON beside text/event-stream (urql's, for every operation) is
    answered as JSON: strawberry would otherwise stream it. Subscriptions over graphql-sse send
    Accept: text/event-stream alone."""
    accept = Headers(scope=scope).get("accept", "")
    if "text/event-stream" not in accept or only_event_stream(accept):
        return scope
    kept = ", ".join(p for p in accept.split(",") if p.split(";", 1)[0].strip().lower() != "text/event-stream")
    headers = [(k, v) for k, v in scope["headers"] if k != b"accept"] + [(b"accept", kept.encode())]
    return {**scope, "headers": headers}


def only_event_stream(accept: str) -> bool:
    """Whether a request can be answered only as an event stream (graphql-sse's clients send
    Accept: text/event-stream alone). Such a request skips ConcurrencyLimit, so it must be a
    subscription. Clients that list JSON beside it (urql's fetch exchange lists
    application/json, text/event-stream and multipart/mixed for every operation) are counted
    like any request, and their queries and mutations run."""
    media = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return "text/event-stream" in media and not media & JSON_MEDIA


JSON_MEDIA = {"application/json", "application/graphql-response+json", "application/graphql+json", "*/*"}


def _streams_a_subscription(request: Request, body: bytes) -> bool:
    if request.method != "POST":
        params = request.query_params
        return _runs_as_subscription(params.get("query"), params.get("operationName"))
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True  # strawberry refuses it, running nothing
    if not isinstance(payload, dict):
        return False
    return _runs_as_subscription(payload.get("query"), payload.get("operationName"))


def _lean_candidate(request: Request) -> bool:
    if request.method != "POST":  # a POST's content type is JSON by now (415 otherwise)
        return False
    accept = request.headers.get("accept", "")
    return not accept or any(m in accept for m in ("application/json", "*/*", GRAPHQL_RESPONSE))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already read body over once more, for the normal path."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed():
        return pending.pop() if pending else await receive()

    return replayed


class BodyLimit:
    """Refuses request bodies over max_bytes with 413, whether announced or streamed."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_response(
            scope, 413, f"Request body over {self.max_bytes} bytes.", {"code": "PAYLOAD_TOO_LARGE"}
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await too_large(scope, receive, send)
                return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await too_large(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class RequestId:
    """Gives every request its id, sent back in X-Request-Id on every response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = (b"x-request-id", request_id(scope).encode())

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class ConcurrencyLimit:
    """Over max_requests requests in flight in this process, answers 503 SERVER_BUSY at once.

    This, not uvicorn's limit_concurrency (a plain-text 503 without CORS headers), sheds load:
    the answer is a GraphQL response like every other, with Retry-After and the request id.
    """

    def __init__(self, app, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the API's requests count: the probes and /metrics must answer when it is full,
        # which is when a liveness probe's 503 would restart a healthy server mid-burst.
        if scope["type"] != "http" or scope["path"] != "/graphql":
            await self.app(scope, receive, send)
            return
        if only_event_stream(Headers(scope=scope).get("accept", "")):
            # A subscription's event stream stays open: LIVE_MAX_SUBSCRIPTIONS caps those instead.
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_requests:
            extensions = {"code": "SERVER_BUSY", "retryable": True}
            busy = error_response(scope, 503, MESSAGES["SERVER_BUSY"], extensions, {"Retry-After": "1"})
            await busy(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class _AsgiEndpoint:
    """Lets a plain ASGI callable be a Route endpoint (Starlette wraps functions otherwise)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def app_from_env() -> Starlette:
    """One worker's app under `incidents serve --workers N`: the settings come from the
    environment, where the command put the database URL it resolved (and the demo token)."""
    return create_app(config.settings(), demo_token=os.environ.get(DEMO_TOKEN_VARIABLE) or None)


def create_app(
    settings: Settings | None = None, pool: asyncpg.Pool | None = None, demo_token: str | None = None
) -> Starlette:
    """The app. With a pool given, the caller owns it; otherwise the app opens one on startup.

    demo_token, set by `incidents serve --demo`, lets the console at / sign in the demo user.
    """
    settings = settings or config.settings()
    if settings.traces:
        from app import tracing  # only then: off, tracing costs nothing, not even this import
    graphql_app = GraphQLApp(settings)
    correlation = graphql_app.correlation
    pool_watch = metrics.PoolWatch(pool)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        metrics.process_started()
        url = settings.database_url
        if pool is None:
            url = db.resolve_database_url(settings)
            app.state.pool = pool_watch.pool = await db.create_pool(url, settings)
            app.state.readiness = Readiness(url)
            # What exists now (the schema, the modules) lives as long as the process: leave it out
            # of the garbage collector's full passes, which otherwise stall a request for ~20 ms.
            gc.freeze()
        # The process's one LISTEN connection (app/listener.py); consumers subscribe to it.
        app.state.listener = Listener(url) if url else None
        # Verified tokens, trusted only while the listener hears every access change (no
        # listener: every request looks its token up).
        app.state.tokens = TokenCache()
        if app.state.listener is not None:
            # Their background tasks keep this context: the listener's probes and the cache's
            # heartbeats (four a second) make no trace spans to bury the requests' statements.
            app.state.live = Feed(
                app.state.pool,
                app.state.listener,
                max_subscriptions=settings.live_max_subscriptions,
                buffer=settings.live_buffer,
            )
            with tracing.untraced() if settings.traces else contextlib.nullcontext():
                await app.state.tokens.start(listener=app.state.listener)
                await app.state.listener.start()
                await app.state.live.start()  # its reads of the log every 2 s make no spans either
        sampling = asyncio.create_task(pool_watch.run())
        evidence_sample = asyncio.create_task(evidence.keep_sample_fresh(app.state.pool))
        with tracing.untraced() if settings.traces else contextlib.nullcontext():
            merging = asyncio.create_task(trigram_indexes.keep_pending_lists_short(app.state.pool))
        try:
            yield
        finally:
            sampling.cancel()
            upkeep = {evidence_sample, merging}
            for task in upkeep:
                task.cancel()
            # (not reading on the pool as it closes; bounded: a cancelled statement's connection
            # may wait for the server to confirm the cancel)
            await asyncio.wait(upkeep, timeout=5)
            await app.state.tokens.stop()
            if app.state.live is not None:
                await app.state.live.stop()
            if app.state.listener is not None:
                await app.state.listener.stop()
            await background.finish()
            if app.state.readiness is not None:
                await app.state.readiness.close()
            if pool is None:
                await app.state.pool.close()
                if settings.traces:
                    tracing.flush()
            metrics.process_stopping()

    async def graphql(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a WebSocket: graphql-transport-ws authenticates in connection_init
            await graphql_app(scope, receive, send)
            return
        request = Request(scope, receive)
        if _wants_ide(request):
            await graphql_app(scope, receive, send)
            return
        if request.method not in ALLOWED_METHODS:
            message = "GraphQL only supports GET and POST requests."
            allow = {"Allow": ", ".join(ALLOWED_METHODS)}
            await error_response(scope, 405, message, {"code": "METHOD_NOT_ALLOWED"}, allow)(scope, receive, send)
            return
        if _unsupported_content_type(request):
            message = "Send the request as Content-Type: application/json."
            await error_response(scope, 415, message, {"code": "UNSUPPORTED_MEDIA_TYPE"})(scope, receive, send)
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await _unauthenticated(scope, "Send an API token as 'Authorization: Bearer <token>'.")(scope, receive, send)
            return
        observation = observe.observation(scope)
        database = db.Database(
            request.app.state.pool, settings.pool_timeout, settings.connections_per_request, pool_watch
        )
        started = False

        async def tracked_send(message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            viewer = await request.app.state.tokens.viewer_for_token(conn=database, token=token.strip())
            if viewer is None:
                await _unauthenticated(scope, "The API token is unknown or revoked, or its user is disabled.")(
                    scope, receive, send
                )
                return
            observation.viewer = viewer.name
            context = Context(
                pool=database,
                viewer=viewer,
                request_id=request_id(scope),
                correlation=correlation,
                observation=observation,
                token=token.strip(),
                live=request.app.state.live,
                streams=only_event_stream(request.headers.get("accept", "")),
            )
            scope.setdefault("state", {})["context"] = context
            body = await request.body() if request.method == "POST" else b""
            try:
                # A persisted document's id becomes its text here, for both paths (app/api/persisted.py).
                body = await graphql_app.persisted.resolve(scope, body, conn=database, registered_by=viewer.id)
            except DocumentRefused as refused:
                refusal = error_response(
                    scope, refused.status, refused.message, {"code": refused.code}, refused.headers
                )
                await refusal(scope, receive, send)
                return
            if only_event_stream(request.headers.get("accept", "")) and not _streams_a_subscription(request, body):
                # An event stream skips ConcurrencyLimit: only a subscription may have one.
                await error_response(scope, 400, SSE_SUBSCRIPTIONS_ONLY, {"code": "BAD_REQUEST"})(scope, receive, send)
                return
            if settings.lean_path and _lean_candidate(request):
                # Documents the lean path knows skip graphql-core's execution (app/api/lean/).
                answer = await graphql_app.lean.execute(body, context)
                if answer is not None:
                    answer_type = media_type(request.headers.get("accept", ""))
                    await Response(answer, media_type=answer_type)(scope, receive, tracked_send)
                    return
            if request.method == "POST":
                receive = _replay(body, receive)
            await graphql_app(scope, receive, tracked_send)
        except _BodyTooLarge:
            raise  # BodyLimit answers it: 413
        except Exception as exc:  # every failure is a GraphQL error with the request id
            if started:
                raise
            message, extensions = translate(exc, request_id(scope))
            retryable = extensions.get("retryable", False)
            headers = {"Retry-After": "1"} if retryable else None
            await error_response(scope, 503 if retryable else 500, message, extensions, headers)(scope, receive, send)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        readiness = request.app.state.readiness
        problem = await readiness.problem() if readiness is not None else "starting"
        if problem is not None:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        if settings.metrics == "token":
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
            given = token.strip().encode("latin-1")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given, (settings.metrics_token or "").encode()):
                return Response(
                    "Send METRICS_TOKEN as 'Authorization: Bearer <token>'.\n", 401, {"WWW-Authenticate": "Bearer"}
                )
        # Reading every worker's files is file I/O: off the event loop.
        return Response(await asyncio.to_thread(metrics.exposition), media_type=metrics.CONTENT_TYPE)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *([Route("/metrics", metrics_endpoint)] if settings.metrics != "off" else []),
            # Every method reaches it: one not allowed gets a GraphQL error too, not Starlette's text.
            Route("/graphql", _AsgiEndpoint(graphql)),
            WebSocketRoute("/graphql", _AsgiEndpoint(graphql)),
            *web.routes(),
        ],
        lifespan=lifespan,
    )
    # Outermost last: the request's span, CORS (its headers on every answer), Observe, RequestId,
    # ConcurrencyLimit, BodyLimit.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ConcurrencyLimit, max_requests=settings.max_concurrency)
    app.add_middleware(RequestId)
    app.add_middleware(
        observe.Observe, max_operations=settings.metrics_max_operations, request_lines=settings.log_format == "json"
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=list(ALLOWED_METHODS),
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            expose_headers=["Retry-After", "X-Request-Id"],
            max_age=600,
        )
    if settings.traces:
        app.add_middleware(tracing.RequestSpans, provider=tracing.tracer_provider())
    app.state.demo_token = demo_token
    app.state.readiness = None  # the lifespan's, with the pool it opens
    app.state.listener = None  # the lifespan's
    app.state.tokens = TokenCache()  # the lifespan's, started with the listener
    app.state.live = None  # the lifespan's: live updates (app/live.py)
    if pool is not None:
        app.state.pool = pool
        app.state.readiness = Readiness(settings.database_url) if settings.database_url else None
    return app
