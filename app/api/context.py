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
    correlation_across_scopes: bool = False  # Settings.correlation_across_scopes
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.pool, self.viewer)
