"""How errors reach clients, on both execution paths (translate is the one place).

Errors in the request itself, found by graphql-core before anything runs (the lean path leaves
such documents to it), get their code from ErrorPolicy: GRAPHQL_PARSE_FAILED,
GRAPHQL_VALIDATION_FAILED, and BAD_USER_INPUT for variables that do not fit their types.
Expected errors keep their message and get an extensions.code: BAD_USER_INPUT, FORBIDDEN.
Errors of the database or the server carry `retryable` and the request id:
- DATABASE_UNAVAILABLE: the database could not be reached; nothing was changed.
- SERVER_BUSY: no database connection became free in time; nothing was changed.
- TIMEOUT: a statement ran over the statement timeout or waited too long for a lock; nothing was
  changed.
- OUTCOME_UNKNOWN: the connection broke while a write was committing, so it may have been applied.
  retryable is true only when a replay is safe (linkAlerts, mergeIncidents and revertMove with an
  idempotency key; ingestAlerts, whose alerts are deduplicated by externalId).
- APPLIED_ANSWER_UNAVAILABLE: a mutation was applied, but building its answer failed afterwards;
  retryable is false, since a retry would apply it again.
Anything else is unexpected: it is logged with its traceback under the request id, and the
client sees only "Unexpected error" with that id.
"""

from __future__ import annotations

import logging

import asyncpg
from graphql import GraphQLError, GraphQLSyntaxError, VariableDefinitionNode
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.extensions import MaskErrors

from app import metrics
from app.db import BrokenConnection, Busy, OutcomeUnknown
from app.domain.errors import InvalidArgument, NotAllowed

log = logging.getLogger("app.errors")

TIMEOUTS = (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)
UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    BrokenConnection,
    ConnectionError,
    OSError,
    TimeoutError,
)
MESSAGES = {
    "SERVER_BUSY": "The server is busy; nothing was changed. Retry shortly.",
    "DATABASE_UNAVAILABLE": "The database is unavailable, so the request did not complete. Retry shortly.",
    "TIMEOUT": "The request took longer than the statement timeout (or waited too long for a lock held "
    "by another change); nothing was changed. Retry shortly.",
    "OUTCOME_UNKNOWN": "The connection to the database broke while the change was being committed: it may "
    "or may not have been applied. Look before you act again, or retry with the same idempotencyKey.",
    "APPLIED_ANSWER_UNAVAILABLE": "{mutation} was applied, but its answer could not be read ({reason}). Do not "
    "retry it: query the incidents to see the result.",
}


def _counted(code: str | None) -> str | None:
    if code == "TIMEOUT":
        metrics.STATEMENT_TIMEOUTS.inc()
    return code


def infrastructure_code(exc: BaseException) -> str | None:
    """The code of a failure of the database or the server, or None for any other exception."""
    if isinstance(exc, OutcomeUnknown):
        return "OUTCOME_UNKNOWN"
    if isinstance(exc, Busy):
        return "SERVER_BUSY"
    if isinstance(exc, TIMEOUTS):  # before UNAVAILABLE: both are PostgreSQL errors
        return "TIMEOUT"
    if isinstance(exc, UNAVAILABLE):
        return "DATABASE_UNAVAILABLE"
    return None


def translate(exc: BaseException, request_id: str | None, applied: str | None = None) -> tuple[str, dict]:
    """The message and extensions a client sees for an exception raised while resolving.

    applied: the mutation (its response key) that had already changed something when this was
    raised in its answer; then no code may say that nothing was changed.
    """
    if applied is not None and not isinstance(exc, InvalidArgument | NotAllowed):
        # A client's mistake in the answer's arguments keeps its code: it does not claim that
        # nothing changed, and the payload shows the mutation's own outcome.
        code = _counted(infrastructure_code(exc)) or "INTERNAL_SERVER_ERROR"
        log.warning(
            "request %s: %s applied, its answer failed: %r",
            request_id,
            applied,
            exc,
            exc_info=code == "INTERNAL_SERVER_ERROR",
        )
        message = MESSAGES["APPLIED_ANSWER_UNAVAILABLE"].format(mutation=applied, reason=code)
        return message, {"code": "APPLIED_ANSWER_UNAVAILABLE", "retryable": False, "requestId": request_id}
    if isinstance(exc, InvalidArgument):
        return exc.message, {"code": "BAD_USER_INPUT", "field": exc.field}
    if isinstance(exc, NotAllowed):
        return str(exc), {"code": "FORBIDDEN"}
    code = _counted(infrastructure_code(exc))
    if code is not None:
        retryable = exc.retryable if isinstance(exc, OutcomeUnknown) else True
        log.warning("request %s: %s: %r", request_id, code, exc)
        return MESSAGES[code], {"code": code, "retryable": retryable, "requestId": request_id}
    log.error("request %s: unexpected error", request_id, exc_info=exc)
    return f"Unexpected error (request id {request_id}).", {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}


class ErrorPolicy(MaskErrors):
    def __init__(self) -> None:
        super().__init__()
        self.executed = False

    def on_operation(self):
        # The parser cache parses in its own hook, and a syntax error raised there leaves the
        # operation as an exception, past the processing of its result: it gets its code here.
        try:
            yield from super().on_operation()
        except GraphQLSyntaxError as error:
            error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_PARSE_FAILED"}
            raise

    def on_execute(self):
        self.executed = True
        yield

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._translate(e) for e in errors]

    def _request_error_code(self, error: GraphQLError) -> str | None:
        """The code of an error in the request itself, or None for any other error."""
        if error.extensions and "code" in error.extensions:
            return None  # a limit's own code (QUERY_TOO_COSTLY)
        if isinstance(error, GraphQLSyntaxError):
            return "GRAPHQL_PARSE_FAILED"
        if not self.executed:
            # A rule's errors point at the document (some keep a scalar's ValueError); an
            # exception raised on the way has no nodes and stays unexpected.
            return "GRAPHQL_VALIDATION_FAILED" if error.nodes else None
        # Variables are coerced as execution starts; their errors point at their definitions,
        # except a @oneOf input's (strawberry checks those itself, past graphql-core's wrapping).
        if not error.path and error.nodes and all(isinstance(n, VariableDefinitionNode) for n in error.nodes):
            return "BAD_USER_INPUT"
        if not error.path and isinstance(error.original_error or error, StrawberryInputCoercionError):
            return "BAD_USER_INPUT"
        return None

    def _translate(self, error: GraphQLError) -> GraphQLError:
        code = self._request_error_code(error)
        if code is not None:
            return _rebuilt(error, error.message, {**(error.extensions or {}), "code": code})
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return error
        context = self.execution_context.context
        root = error.path[0] if error.path else None
        applied = root if root in getattr(context, "applied", ()) else None
        return _rebuilt(error, *translate(original, getattr(context, "request_id", None), applied))


def _rebuilt(error: GraphQLError, message: str, extensions: dict) -> GraphQLError:
    """The error with this message and these extensions, where it was, without its cause."""
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )
