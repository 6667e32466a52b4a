"""How errors reach clients.

Expected errors keep their message and get an extensions.code: BAD_USER_INPUT, FORBIDDEN.
A database that cannot be reached gives DATABASE_UNAVAILABLE with retryable: true. Anything
else is unexpected: it is logged with its traceback under the request id, and the client sees
only "Unexpected error" with that id.
"""

from __future__ import annotations

import logging

import asyncpg
from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from app.db import Busy
from app.domain.errors import InvalidArgument, NotAllowed

log = logging.getLogger("app.errors")

UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.QueryCanceledError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def unavailable(exc: BaseException) -> tuple[str, str]:
    """The code and message for a request that could not reach the database."""
    if isinstance(exc, Busy):
        return "SERVER_BUSY", "The server is busy; nothing was changed. Retry shortly."
    return "DATABASE_UNAVAILABLE", "The database is unavailable, so the request did not complete. Retry shortly."


class ErrorPolicy(MaskErrors):
    def __init__(self) -> None:
        super().__init__()

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._translate(e) for e in errors]

    def _translate(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return error
        if isinstance(original, InvalidArgument):
            return self._with(error, original.message, {"code": "BAD_USER_INPUT", "field": original.field})
        if isinstance(original, NotAllowed):
            return self._with(error, str(original), {"code": "FORBIDDEN"})
        request_id = getattr(self.execution_context.context, "request_id", None)
        if isinstance(original, (*UNAVAILABLE, Busy)):
            code, message = unavailable(original)
            log.warning("request %s: %s: %r", request_id, code, original)
            return self._with(error, message, {"code": code, "retryable": True, "requestId": request_id})
        log.error("request %s: unexpected error", request_id, exc_info=original)
        return self._with(
            error,
            f"Unexpected error (request id {request_id}).",
            {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )

    @staticmethod
    def _with(error: GraphQLError, message: str, extensions: dict) -> GraphQLError:
        return GraphQLError(
            message=message, nodes=error.nodes, source=error.source, positions=error.positions,
            path=error.path, original_error=None, extensions=extensions,
        )
