"""Per-request DataLoaders: each batches one kind of lookup into one SQL statement."""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property

import asyncpg
from strawberry.dataloader import DataLoader

from app.domain import activity, alerts, incidents
from app.domain.viewers import Viewer


def _grouped_by_first(fetch):
    """A loader over (id, first) keys that runs one query per distinct page size."""

    async def load(keys):
        by_first: dict[int, list[int]] = defaultdict(list)
        for key_id, first in keys:
            by_first[first].append(key_id)
        pages = {}
        for first, ids in by_first.items():
            for key_id, page in (await fetch(ids, first)).items():
                pages[(key_id, first)] = page
        return [pages[k] for k in keys]

    return DataLoader(load)


class Loaders:
    """A request's loaders, each made when first used: most requests need one or two."""

    def __init__(self, pool: asyncpg.Pool, viewer: Viewer) -> None:
        self.pool = pool
        self.viewer = viewer

    @cached_property
    def incident(self) -> DataLoader:
        async def load(ids):
            found = await incidents.get_incidents(conn=self.pool, viewer=self.viewer, ids=list(ids))
            return [found.get(i) for i in ids]

        return DataLoader(load)

    @cached_property
    def alert(self) -> DataLoader:
        async def load(ids):
            found = await alerts.get_alerts(conn=self.pool, viewer=self.viewer, ids=list(ids))
            return [found.get(i) for i in ids]

        return DataLoader(load)

    @cached_property
    def entities(self) -> DataLoader:
        async def load(ids):
            found = await alerts.entities_of(conn=self.pool, alert_ids=list(ids))
            return [found.get(i, []) for i in ids]

        return DataLoader(load)

    @cached_property
    def readable_summary(self) -> DataLoader:
        async def load(ids):
            found = await incidents.readable_summaries(conn=self.pool, viewer=self.viewer, incident_ids=list(ids))
            return [found.get(i) for i in ids]

        return DataLoader(load)

    @cached_property
    def first_alerts(self) -> DataLoader:
        return _grouped_by_first(
            lambda ids, first: alerts.first_alerts_of_incidents(
                conn=self.pool, viewer=self.viewer, incident_ids=ids, first=first
            )
        )

    @cached_property
    def first_entries(self) -> DataLoader:
        return _grouped_by_first(
            lambda ids, first: activity.first_entries_of_incidents(conn=self.pool, incident_ids=ids, first=first)
        )
