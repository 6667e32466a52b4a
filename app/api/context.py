"""What every resolver gets: the pool, the viewer, the request id and the loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from app.api.loaders import Loaders
from app.domain.viewers import Viewer


@dataclass
class Context:
    pool: asyncpg.Pool
    viewer: Viewer
    request_id: str
    correlation_window: timedelta
    loaders: Loaders = field(init=False)
    # Mutations the lean path (app/api/compiled.py) has committed, by response key: when it then
    # leaves the request to the normal path, the resolver answers from the result instead of
    # running the mutation a second time.
    committed: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.pool, self.viewer)
