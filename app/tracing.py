"""Traces with OpenTelemetry, exported over OTLP/HTTP: a span per request, named after its GraphQL
operation, with a child span per SQL statement.

Only when an OTLP endpoint is set (Settings.traces, docs/tracing.md). Otherwise the server never
imports this module: no tracer provider, no instrumentation, nothing done per request.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.util.http import OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS, get_custom_headers
from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_SERVICE_NAME = "incident-graph"
# Probes and scrapes: a trace each would bury the requests worth reading.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
REQUEST_ID = "incident_graph.request_id"  # the X-Request-Id of the response
OPERATION_TYPE = "graphql.operation.type"
OPERATION_NAME = "graphql.operation.name"
_REQUEST_SCOPE = "incident_graph.scope"

_provider: TracerProvider | None = None


def tracer_provider() -> TracerProvider:
    """This process's provider, made on first use, with SQL statements traced from then on.

    Made by create_app: under `incidents serve --workers N` each worker process makes its own,
    with its own export thread.
    """
    global _provider
    if _provider is None:
        resource = Resource.create()
        if SERVICE_NAME not in OTELResourceDetector().detect().attributes:  # OTEL_SERVICE_NAME and the like
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        # The exporter and the processor read the standard OTEL_EXPORTER_OTLP_* and OTEL_BSP_*.
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        # Statement texts only: their values are $n parameters, never recorded.
        AsyncPGInstrumentor(capture_parameters=False).instrument(tracer_provider=provider)
        _provider = provider
    return _provider


def untraced():
    """A block whose SQL statements make no span, nor those of the tasks it starts (they copy
    its context): background work that would bury the requests' statements."""
    return suppress_instrumentation()


def flush(timeout_ms: int = 5000) -> None:
    """Send what is waiting, when the server stops."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


class RequestSpans:
    """A server span per HTTP request (OpenTelemetry's ASGI middleware), with the request id and,
    once an execution path has chosen it, the GraphQL operation (Context.operation)."""

    def __init__(self, app: ASGIApp, provider: TracerProvider) -> None:
        self.app = app
        # Headers are recorded only when asked for (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*),
        # and never the credentials among them.
        redacted = [
            "authorization",
            "cookie",
            *get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS),
        ]
        self.traced = OpenTelemetryMiddleware(
            self._named,
            tracer_provider=provider,
            http_capture_headers_sanitize_fields=redacted,
            exclude_spans=["receive", "send"],  # a request is one span, not one per message too
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        # The middleware records the URL: never with a GET's query string, which holds the
        # document and its variables.
        await self.traced({**scope, "query_string": b"", _REQUEST_SCOPE: scope}, receive, send)

    async def _named(self, traced_scope: Scope, receive: Receive, send: Send) -> None:
        scope = traced_scope[_REQUEST_SCOPE]
        span = trace.get_current_span()

        async def describing_send(message) -> None:
            # The middleware ends the span with the response's last part: described before it.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                _describe(span, scope.get("state", {}))
            await send(message)

        try:
            await self.app(scope, receive, describing_send)
        finally:
            if span.is_recording():  # no response sent in full
                _describe(span, scope.get("state", {}))


def _describe(span: trace.Span, state: dict) -> None:
    if "request_id" in state:  # given by app.server.RequestId
        span.set_attribute(REQUEST_ID, state["request_id"])
    operation = getattr(state.get("context"), "operation", None)
    if operation is not None:
        kind = operation.operation.value
        span.set_attribute(OPERATION_TYPE, kind)
        if operation.name is None:
            span.update_name(kind)
        else:
            span.set_attribute(OPERATION_NAME, operation.name.value)
            span.update_name(f"{kind} {operation.name.value}")
