"""Per-request DataLoaders: each batches one kind of lookup into one SQL statement."""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property

import asyncpg
from strawberry.dataloader import DataLoader

from app.domain import activity, alerts, incidents, moves
from app.domain.viewers import Viewer


def _grouped_by_size(fetch):
    """A loader over (id, page size) keys that runs one query per distinct page size."""

    async def load(keys):
        by_size: dict[int, list[int]] = defaultdict(list)
        for key_id, size in keys:
            by_size[size].append(key_id)
        pages = {}
        for size, ids in by_size.items():
            for key_id, page in (await fetch(ids, size)).items():
                pages[(key_id, size)] = page
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
    def move(self) -> DataLoader:
        async def load(ids):
            found = await moves.get_moves(conn=self.pool, viewer=self.viewer, ids=list(ids))
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
        return _grouped_by_size(
            lambda ids, first: alerts.first_alerts_of_incidents(
                conn=self.pool, viewer=self.viewer, incident_ids=ids, first=first
            )
        )

    @cached_property
    def last_alerts(self) -> DataLoader:
        """Each incident's oldest readable alerts: a backward page without a cursor."""
        return _grouped_by_size(
            lambda ids, last: alerts.first_alerts_of_incidents(
                conn=self.pool, viewer=self.viewer, incident_ids=ids, last=last
            )
        )

    @cached_property
    def first_entries(self) -> DataLoader:
        return _grouped_by_size(
            lambda ids, first: activity.first_entries_of_incidents(conn=self.pool, incident_ids=ids, first=first)
        )

    @cached_property
    def last_entries(self) -> DataLoader:
        """Each incident's oldest log entries: a backward page without a cursor."""
        return _grouped_by_size(
            lambda ids, last: activity.first_entries_of_incidents(conn=self.pool, incident_ids=ids, last=last)
        )
