"""What each /graphql request did, for the metrics and the request log.

Observe, the outermost middleware but CORS, gives every /graphql request an Observation; the
layers that learn something fill it in (server.py: the viewer; both execution paths: the
operation and the errors' codes; the mutations: their payload errors), and when the answer
has gone out Observe counts it and, with LOG_FORMAT=json, writes its line. Only what is listed
here reaches a log line: never a token, a query, variables, a comment or an alert's content.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from starlette.types import Receive, Scope, Send

from app import metrics

log = logging.getLogger("app.requests")
# A request the client left before it had an answer (nginx's convention).
CLIENT_CLOSED = 499


@dataclass(slots=True)
class Observation:
    started: float = field(default_factory=time.perf_counter)
    viewer: str | None = None
    # The operation that ran, from a document that parsed and validated; None until one did.
    operation_type: str | None = None
    operation_name: str | None = None
    status: int = 0
    codes: list[str] = field(default_factory=list)  # extensions.code of every error of the answer
    payload_codes: list[str] = field(default_factory=list)  # codes of mutations' payload errors

    def operation(self, name: str | None, operation_type: str) -> None:
        self.operation_name = name
        self.operation_type = operation_type


def observation(scope: Scope) -> Observation:
    """The request's observation (a throwaway one for a scope that never passed Observe)."""
    state = scope.setdefault("state", {})
    found = state.get("observation")
    if found is None:
        found = state["observation"] = Observation()
    return found


def payload_errors(observed: Observation, mutation: str, codes: list[str]) -> None:
    """A mutation refused with these codes: counted, and named in the request's log line."""
    for code in codes:
        metrics.PAYLOAD_ERRORS.labels(mutation, code).inc()
    observed.payload_codes.extend(codes)


class Observe:
    def __init__(self, app, max_operations: int, request_lines: bool) -> None:
        self.app = app
        self.names = metrics.OperationNames(max_operations)
        self.request_lines = request_lines
        # The labelled children by their labels: one dict lookup instead of prometheus_client's
        # locked one, on every request.
        self._requests: dict[tuple[str, str, int], object] = {}
        self._durations: dict[tuple[str, str], object] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/graphql":
            await self.app(scope, receive, send)
            return
        observed = scope.setdefault("state", {})["observation"] = Observation()

        async def observed_send(message) -> None:
            if message["type"] == "http.response.start":
                observed.status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            observed.status = observed.status or 500
            raise
        finally:
            self._record(scope, observed)

    def _record(self, scope: Scope, observed: Observation) -> None:
        seconds = time.perf_counter() - observed.started
        status = observed.status or CLIENT_CLOSED
        if observed.operation_type is None:
            operation = operation_type = "none"
        else:
            operation, operation_type = self.names.label(observed.operation_name), observed.operation_type
        key = (operation, operation_type, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = metrics.REQUESTS.labels(operation, operation_type, str(status))
        counter.inc()
        histogram = self._durations.get(key[:2])
        if histogram is None:
            histogram = self._durations[key[:2]] = metrics.DURATION.labels(operation, operation_type)
        histogram.observe(seconds)
        for code in observed.codes:
            metrics.ERRORS.labels(code).inc()
        if self.request_lines and log.isEnabledFor(logging.INFO):
            fields = {
                "request_id": scope["state"].get("request_id"),
                "viewer": observed.viewer,
                "operation": observed.operation_name,
                "operation_type": observed.operation_type,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "errors": observed.codes,
                "payload_errors": observed.payload_codes,
            }
            log.info("request", extra={"fields": fields})
