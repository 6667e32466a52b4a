"""Persisted documents on /graphql: Apollo's automatic persisted queries (APQ) and trusted documents.

A request names a stored document by its SHA-256 (of the text's UTF-8 bytes, in hex):
- APQ: `extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`, in a POST's body or
  a GET's query string, with or without `query`;
- GraphQL over HTTP's persisted documents: `documentId = "sha256:<hex>"` (a bare hex too).

`resolve` runs once per request, after authentication and before either execution path: it
swaps the id for the stored text, so the lean path and graphql-core see an ordinary request
with `query`, under the same limits as any other. Without GRAPHQL_TRUSTED_DOCUMENTS_ONLY, a
`query` sent with its hash is checked and stored for the user who sent it, and only that user's
hash finds it (what bounds that storage: app/domain/persisted.py); trusted documents are found
by everyone. With it, only documents registered by `incidents documents register` run, and a
request with any `query` text is refused, before anything parses it.

Refusals (DocumentRefused, answered with the server's error envelope):
- PERSISTED_QUERY_NOT_FOUND, HTTP 200 in either media type, message "PersistedQueryNotFound"
  (what Apollo's persisted-query link looks for, to retry with the text; a 400 or 500 would make
  its default `disable` turn APQ off for the rest of the session): no document under that hash
  that this user may run; in trusted mode, no trusted one. `Cache-Control: no-store`, so no
  cache keeps the miss.
- PERSISTED_QUERY_HASH_MISMATCH, 400: the hash sent is not the SHA-256 of the `query` sent.
- TRUSTED_DOCUMENT_REQUIRED, 400: trusted mode, and the request carries a `query` text.
- PERSISTED_QUERY_INVALID, 400: a malformed id or extension, an APQ version other than 1, or
  documentId together with `query` or persistedQuery.
- BAD_REQUEST, 400: trusted mode, and a POST body that is not JSON orjson reads.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlencode

import orjson
from graphql import GraphQLError, parse
from starlette.types import Scope

from app.domain import persisted

NOT_FOUND = "PersistedQueryNotFound"
HEX = re.compile(r"[0-9a-f]{64}")
CACHE_SIZE = 1024


class DocumentRefused(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _invalid(message: str) -> DocumentRefused:
    return DocumentRefused(400, "PERSISTED_QUERY_INVALID", message)


TRUSTED_REQUIRED = (
    "This server runs only trusted documents: send the id of a document registered with"
    " `incidents documents register` (extensions.persistedQuery.sha256Hash or documentId), not its text."
)


class PersistedDocuments:
    """Resolves persisted document ids for one process, with a cache of the documents it found.

    The database is the truth (every process and replica shares it); the cache only saves a
    round trip, and is safe because a document's body never changes under its hash. It is keyed
    like the rows: a trusted document under (hash, None), found by everyone, an untrusted one
    under (hash, its user), found by that user alone. Misses are never cached: another process
    may register the document a moment later. A hit outlives its row (a trusted document
    deleted from the table keeps running here until a restart).
    """

    def __init__(self, *, trusted_only: bool) -> None:
        self.trusted_only = trusted_only
        self._cache: dict[tuple[bytes, int | None], str] = {}

    async def resolve(self, scope: Scope, body: bytes, *, conn, registered_by: int) -> bytes:
        """The request with the persisted document's text as its `query`: a POST's body is
        returned, a GET's query string is rewritten in scope (and body returned as it was)."""
        if scope["method"] == "GET":
            await self._resolve_query_string(scope, conn, registered_by)
            return body
        if not self.trusted_only and b"persistedQuery" not in body and b"documentId" not in body:
            return body  # the common case, without parsing the body twice
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            if self.trusted_only:
                # Fail closed: the normal path's JSON parser reads what orjson refuses (NaN, lone
                # surrogates), and would find a query text this check never saw.
                raise DocumentRefused(400, "BAD_REQUEST", "Unable to parse request body as JSON.") from None
            return body  # refused as malformed JSON, before any GraphQL
        if not isinstance(request, dict):
            if self.trusted_only:  # a batch carries texts; refused even if batching is allowed one day
                raise DocumentRefused(400, "TRUSTED_DOCUMENT_REQUIRED", TRUSTED_REQUIRED)
            return body
        resolved = await self._resolve(request, conn, registered_by)
        return body if resolved is None else orjson.dumps(resolved)

    async def _resolve_query_string(self, scope: Scope, conn, registered_by: int) -> None:
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        params = dict(pairs)
        request: dict = {k: params[k] for k in ("query", "documentId") if k in params}
        if "extensions" in params:
            try:
                request["extensions"] = orjson.loads(params["extensions"])
            except orjson.JSONDecodeError:
                request["extensions"] = None  # refused by the normal path: 400
        resolved = await self._resolve(request, conn, registered_by)
        if resolved is None:
            return
        rewritten = {k: v for k, v in params.items() if k not in ("query", "documentId", "extensions")}
        rewritten["query"] = resolved["query"]
        if "extensions" in resolved:
            rewritten["extensions"] = orjson.dumps(resolved["extensions"]).decode()
        scope["query_string"] = urlencode(rewritten).encode("ascii")

    async def _resolve(self, request: dict, conn, registered_by: int) -> dict | None:
        """The request to execute instead, or None: this one runs as it is."""
        query = request.get("query")
        extensions = request.get("extensions")
        apq = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        document_id = request.get("documentId")
        if apq is None and document_id is None:
            if self.trusted_only and query is not None:
                raise DocumentRefused(400, "TRUSTED_DOCUMENT_REQUIRED", TRUSTED_REQUIRED)
            return None
        if document_id is not None:
            if apq is not None or query is not None:
                raise _invalid("Send documentId alone: not with query or extensions.persistedQuery.")
            sha256 = _document_id(document_id)
        else:
            sha256 = _apq_hash(apq)
        if query is not None:
            if self.trusted_only:
                raise DocumentRefused(400, "TRUSTED_DOCUMENT_REQUIRED", TRUSTED_REQUIRED)
            if not isinstance(query, str):
                raise _invalid("query must be a string.")
            if hashlib.sha256(query.encode()).digest() != sha256:
                message = "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query's UTF-8 text."
                raise DocumentRefused(400, "PERSISTED_QUERY_HASH_MISMATCH", message)
            await self._remember(sha256, query, conn, registered_by)
        else:
            query = await self._find(sha256, conn, None if self.trusted_only else registered_by)
        resolved = {"query": query, **{k: request[k] for k in ("variables", "operationName") if k in request}}
        others = {k: v for k, v in extensions.items() if k != "persistedQuery"} if isinstance(extensions, dict) else {}
        if others:
            resolved["extensions"] = others
        return resolved

    async def _find(self, sha256: bytes, conn, user_id: int | None) -> str:
        """The text this user may run under sha256: a trusted document, or one of the user's own
        (user_id None: trusted ones only)."""
        for key in ((sha256, None), (sha256, user_id)) if user_id is not None else ((sha256, None),):
            cached = self._cache.pop(key, None)
            if cached is not None:
                self._cache[key] = cached  # most recently used last
                return cached
        found = await persisted.find(conn=conn, sha256=sha256, user_id=user_id)
        if found is None:
            raise DocumentRefused(200, "PERSISTED_QUERY_NOT_FOUND", NOT_FOUND, {"Cache-Control": "no-store"})
        body, trusted = found
        self._keep((sha256, None if trusted else user_id), body)
        return body

    async def _remember(self, sha256: bytes, query: str, conn, registered_by: int) -> None:
        # Stored every time a client sends the text with its hash, cached or not: a client sends
        # both only after a miss, which may come from a process that no longer finds the row
        # (deleted, or evicted past a cap), and only the insert brings it back for them all.
        if len(query) > persisted.MAX_REMEMBERED_BYTES or not persisted.storable(query):
            return  # runs as it would without APQ, just not stored
        try:
            parse(query, no_location=True)
        except GraphQLError:
            return  # not stored: the execution path reports GRAPHQL_PARSE_FAILED
        if await persisted.remember(conn=conn, body=query, registered_by=registered_by):
            self._keep((sha256, registered_by), query)

    def _keep(self, key: tuple[bytes, int | None], body: str) -> None:
        self._cache.pop(key, None)
        if len(self._cache) >= CACHE_SIZE:
            del self._cache[next(iter(self._cache))]  # the least recently used
        self._cache[key] = body


def _document_id(value: object) -> bytes:
    if isinstance(value, str):
        hex_ = value.removeprefix("sha256:").lower()
        if HEX.fullmatch(hex_):
            return bytes.fromhex(hex_)
    raise _invalid('documentId must be "sha256:" followed by 64 hexadecimal digits.')


def _apq_hash(apq: object) -> bytes:
    if not isinstance(apq, dict) or apq.get("version") != 1:
        raise _invalid("extensions.persistedQuery must be an object with version 1 and sha256Hash.")
    value = apq.get("sha256Hash")
    if not isinstance(value, str) or not HEX.fullmatch(value.lower()):
        raise _invalid("extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits.")
    return bytes.fromhex(value)
