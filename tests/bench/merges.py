"""Merges for the benchmark (issue 14): incidents of 1,000 alerts made through the API, a merge of
ten of them and its revert timed one after another, and a client merging and reverting them in a
loop beside the movers.

The incidents are the benchmark's own: each run ingests new alerts (external ids carry the run
id) whose only evidence is a device no seeded alert has, so correlation joins each group into one
new incident and nothing else measured touches them. A merge and its revert leave them as they
were, so they are merged again and again.
"""

from __future__ import annotations

import threading
import time

import httpx

MERGE = (
    "mutation($ids: [ID!]!, $target: ID) { mergeIncidents(incidentIds: $ids, targetIncidentId: $target,"
    ' comment: "bench: one campaign", reasons: [SAME_CAMPAIGN]) { target { id alertCount } move { id }'
    " errors { code message } } }"
)
REVERT = (
    'mutation($move: ID!) { revertMove(moveId: $move, comment: "bench: not one campaign after all") {'
    " move { id } errors { code message } } }"
)
INGEST = (
    "mutation($alerts: [AlertInput!]!) { ingestAlerts(alerts: $alerts) {"
    " alerts { incident { id } } errors { code message } } }"
)
INCIDENTS = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Incident { id status alertCount } } }"
BATCH = 500  # ingestAlerts' limit


def _post(client: httpx.Client, api: str, token: str, query: str, variables: dict) -> dict:
    """The mutation's or query's data; raises on any error, top-level or in the payload."""
    response = client.post(
        api + "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {token}"}
    )
    body = response.json()
    payload = next(iter((body.get("data") or {}).values()), None)
    if response.status_code != 200 or body.get("errors") or (isinstance(payload, dict) and payload.get("errors")):
        raise RuntimeError(f"{query.split('(')[0]} failed: HTTP {response.status_code} {body}")
    return body["data"]


def make_incidents(
    client: httpx.Client, api: str, token: str, run_id: str, *, incidents: int = 10, alerts: int = 1000
) -> list[str]:
    """`incidents` incidents of `alerts` alerts each, ingested through the API; their ids.

    The alerts' external ids are fixed, so a later run on the same database gets the same
    incidents back (ingesting an alert again returns the stored one), as the last run's revert
    left them. When they are not that (a run stopped between a merge and its revert), a new set
    is made under the run's id.
    """
    for prefix in ("bench-merge", f"bench-merge-{run_id}"):
        made = _ingest(client, api, token, prefix, incidents, alerts)
        found = _post(client, api, token, INCIDENTS, {"ids": made})["nodes"]
        if (
            len(made) == incidents
            and [(i["status"], i["alertCount"]) for i in found] == [("ACTIVE", alerts)] * incidents
        ):
            return made
    raise RuntimeError(f"the merge set-up's incidents are not {incidents} active ones of {alerts} alerts: {found}")


def _ingest(client: httpx.Client, api: str, token: str, prefix: str, incidents: int, alerts: int) -> list[str]:
    """Each group's alerts share a device no other alert has, so correlation makes them one
    incident (several, if a group's alerts are found spread out); the incidents, distinct."""
    made: dict[str, None] = {}
    for g in range(incidents):
        device = f"{prefix}-{g}"
        for start in range(0, alerts, BATCH):
            batch = [
                {
                    "externalId": f"{prefix}-{g}-{n}",
                    "title": f"Beaconing to a known C2 server from {device} ({n})",
                    "severity": ("LOW", "MEDIUM", "MEDIUM", "HIGH")[n % 4],
                    "category": "Command and Control",
                    "entities": [{"kind": "DEVICE", "value": device}],
                }
                for n in range(start, min(alerts, start + BATCH))
            ]
            data = _post(client, api, token, INGEST, {"alerts": batch})
            made.update(dict.fromkeys(a["incident"]["id"] for a in data["ingestAlerts"]["alerts"]))
    return list(made)


def merge(client: httpx.Client, api: str, token: str, incidents: list[str]) -> str:
    """Merges the incidents into the first; the move's id."""
    data = _post(client, api, token, MERGE, {"ids": incidents, "target": incidents[0]})["mergeIncidents"]
    if data["target"]["id"] != incidents[0]:
        raise RuntimeError(f"merged into {data['target']}, not {incidents[0]}")
    return data["move"]["id"]


def revert(client: httpx.Client, api: str, token: str, move: str) -> str:
    return _post(client, api, token, REVERT, {"move": move})["revertMove"]["move"]["id"]


def time_merges(client: httpx.Client, api: str, token: str, incidents: list[str], runs: int) -> dict[str, list[float]]:
    """Merges the incidents and reverts the merge, `runs` times after one warm-up; each one's ms."""
    out: dict[str, list[float]] = {"merge": [], "revert": []}
    for run in range(runs + 1):
        started = time.perf_counter()
        move = merge(client, api, token, incidents)
        merged = time.perf_counter()
        revert(client, api, token, move)
        if run:
            out["merge"].append((merged - started) * 1000)
            out["revert"].append((time.perf_counter() - merged) * 1000)
    return out


class MergeLoop:
    """One client merging the incidents and reverting the merge, again and again, in a thread,
    until stopped; it always finishes with a revert, so the incidents end as they began."""

    def __init__(self, api: str, token: str, incidents: list[str]) -> None:
        self.api, self.token, self.incidents = api, token, incidents
        self.cycles = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MergeLoop:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join(300)

    def _run(self) -> None:
        with httpx.Client(timeout=120) as client:
            while not self._stop.is_set():
                try:
                    move = merge(client, self.api, self.token, self.incidents)
                    revert(client, self.api, self.token, move)
                except (RuntimeError, httpx.HTTPError) as exc:
                    self.errors.append(str(exc)[:500])
                    return
                self.cycles += 1
