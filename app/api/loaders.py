"""Per-request DataLoaders: each batches one kind of lookup into one SQL statement."""

from __future__ import annotations

from collections import defaultdict

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
    def __init__(self, pool: asyncpg.Pool, viewer: Viewer) -> None:
        async def load_incidents(ids):
            found = await incidents.get_incidents(conn=pool, viewer=viewer, ids=list(ids))
            return [found.get(i) for i in ids]

        async def load_alerts(ids):
            found = await alerts.get_alerts(conn=pool, viewer=viewer, ids=list(ids))
            return [found.get(i) for i in ids]

        async def load_entities(ids):
            found = await alerts.entities_of(conn=pool, alert_ids=list(ids))
            return [found.get(i, []) for i in ids]

        async def load_readable_counts(ids):
            found = await incidents.count_readable_alerts(conn=pool, viewer=viewer, incident_ids=list(ids))
            return [found.get(i, 0) for i in ids]

        self.incident = DataLoader(load_incidents)
        self.alert = DataLoader(load_alerts)
        self.entities = DataLoader(load_entities)
        self.readable_alert_count = DataLoader(load_readable_counts)
        self.first_alerts = _grouped_by_first(
            lambda ids, first: alerts.first_alerts_of_incidents(
                conn=pool, viewer=viewer, incident_ids=ids, first=first
            )
        )
        self.first_entries = _grouped_by_first(
            lambda ids, first: activity.first_entries_of_incidents(
                conn=pool, incident_ids=ids, first=first
            )
        )
