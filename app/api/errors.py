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
        if isinstance(original, UNAVAILABLE):
            log.warning("request %s: database unavailable: %r", request_id, original)
            return self._with(
                error,
                "The database is unavailable; nothing was changed. Retry shortly.",
                {"code": "DATABASE_UNAVAILABLE", "retryable": True, "requestId": request_id},
            )
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
