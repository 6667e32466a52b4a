"""What every resolver gets: the pool, the viewer, the request id and the loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
from graphql import OperationDefinitionNode

from app.api.loaders import Loaders
from app.domain.ingestion import Correlation
from app.domain.viewers import Viewer
from app.observe import Observation

if TYPE_CHECKING:
    from app.live import Feed


@dataclass
class Context:
    pool: asyncpg.Pool
    viewer: Viewer
    request_id: str
    correlation: Correlation  # the process's settings
    loaders: Loaders = field(init=False)
    # The response keys of mutations that changed something: an error in their answer after that
    # must not read as "nothing was changed" (errors.translate).
    applied: set[str] = field(default_factory=set)
    # The operation the request runs, set by the execution path that chose it (the lean path's
    # plan, or OperationNameRequired on graphql-core's): the request's span is named after it.
    operation: OperationDefinitionNode | None = None
    # What the request did, for its metrics and log line (app/observe.py).
    observation: Observation = field(default_factory=Observation)
    # Subscriptions: the bearer token, to check the viewer again while one is open, and the
    # process's feed of changes (app/live.py).
    token: str | None = None
    live: Feed | None = None
    # Whether the request can carry a subscription's events: a WebSocket, or an event stream.
    streams: bool = False
    # graphql-transport-ws: the connection_init payload (strawberry sets it).
    connection_params: dict | None = None

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.pool, self.viewer)
