"""Prometheus metrics: what every process counts, and their exposition at /metrics.

Under `incidents serve` every worker process writes its values to files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode), and /metrics, answered by
whichever worker takes the scrape, adds up the files of all of them. prometheus_client chooses
the mode when it is imported, so `incidents serve` sets the variable (to a directory it makes and
removes itself when the operator gave none) before any worker starts. Without it (the tests'
in-process apps) the values live in the process. docs/operations.md says what each one means.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Read once, as prometheus_client read it at its import above: the exposition must match.
MULTIPROCESS = bool(os.environ.get(MULTIPROC_VARIABLE))

# Operations run from 1 ms (a number in the typeahead) to the statement timeout (15 s).
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)
POOL_WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "incident_graph_requests",
    "Requests to /graphql by operation name, operation type and HTTP status.",
    ["operation", "type", "status"],
)
DURATION = Histogram(
    "incident_graph_request_duration_seconds",
    "Time from a /graphql request's arrival to its last byte, by operation name and type.",
    ["operation", "type"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter("incident_graph_errors", "GraphQL errors in /graphql answers, by extensions.code.", ["code"])
PAYLOAD_ERRORS = Counter(
    "incident_graph_payload_errors",
    "Payload errors of mutations (a refused change), by mutation and code.",
    ["mutation", "code"],
)
ALERTS_MOVED = Counter("incident_graph_alerts_moved", "Alerts linkAlerts moved to another incident.")
ALERTS_INGESTED = Counter(
    "incident_graph_alerts_ingested", "New alerts ingestAlerts stored (known externalIds not counted)."
)
STATEMENT_TIMEOUTS = Counter(
    "incident_graph_db_statement_timeouts",
    "Statements cancelled by DB_STATEMENT_TIMEOUT_MS or a lock wait, reported to a client as TIMEOUT.",
)
POOL_SIZE = Gauge(
    "incident_graph_db_pool_connections", "Open connections of the request pools.", multiprocess_mode="livesum"
)
POOL_IN_USE = Gauge(
    "incident_graph_db_pool_in_use",
    "Connections of the request pools in use: by requests, and by the trigram indexes' merges.",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "incident_graph_db_pool_waiting",
    "Requests waiting for a connection of the request pools.",
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge("incident_graph_db_pool_max", "DB_POOL_MAX summed over the processes.", multiprocess_mode="livesum")
POOL_WAIT = Histogram(
    "incident_graph_db_pool_wait_seconds", "Time a request waited for a pool connection.", buckets=POOL_WAIT_BUCKETS
)
TOKEN_LOOKUPS = Counter(
    "incident_graph_token_lookups",
    "API tokens checked, by where the answer came from: the process's token cache or the database.",
    ["source"],
)
LEAN_PATH = Counter(
    "incident_graph_lean_path",
    "Requests offered to the lean execution path: hit (answered there), declined (before anything ran, by "
    "reason) or fallback (a read raised and graphql-core answered it, by exception type).",
    ["outcome", "reason"],
)
LEAN_HIT = LEAN_PATH.labels("hit", "")
# Live updates (app/listener.py, app/live.py).
LISTENER_CONNECTED = Gauge(
    "incident_graph_listener_connected",
    "Processes whose LISTEN connection to PostgreSQL is up (one per process).",
    multiprocess_mode="livesum",
)
LISTENER_LOST = Counter(
    "incident_graph_listener_lost", "Times a process's LISTEN connection was lost (notifications missed meanwhile)."
)
LIVE_SUBSCRIPTIONS = Gauge(
    "incident_graph_live_subscriptions", "Open incidentChanges subscriptions.", multiprocess_mode="livesum"
)
LIVE_CHANGES_SENT = Counter("incident_graph_live_changes_sent", "IncidentChange events sent to subscribers.")
LIVE_RENDERS = Counter(
    "incident_graph_live_renders",
    "IncidentChange events by how their payload was made: rendered for the subscription, shared (the "
    "rendering of the same change for the same document, variables and access, app/api/change_renders.py), "
    "or sent (that rendering's encoded payload sent as it is, past the per-event pipeline).",
    ["how"],
)
LIVE_LEAN_RENDERS = Counter(
    "incident_graph_live_lean_renders",
    'Of the IncidentChange events rendered (live_renders{how="rendered"}), those the lean path rendered '
    '(app/api/lean); the others graphql-core did, a fallback counted in lean_path{outcome="fallback"}.',
)
LIVE_READER_FAILURES = Counter(
    "incident_graph_live_reader_failures",
    "Times a process's reader of the change stream failed unexpectedly and started again (app/live.py): "
    "any rise is a bug to look at; a steady one means live updates are stalled in that process.",
)
LIVE_ENDED = Counter(
    "incident_graph_live_ended",
    "Subscriptions the server ended, by extensions.code (SUBSCRIBER_TOO_SLOW...).",
    ["code"],
)


def lean_declined(reason: str) -> None:
    LEAN_PATH.labels("declined", reason).inc()


def lean_fallback(exception: BaseException) -> None:
    LEAN_PATH.labels("fallback", type(exception).__name__).inc()


NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class OperationNames:
    """The operation label of a request, from a bounded set, so that no client can grow the
    series without end: an operation's own name while this process has given fewer than `limit`
    names a label, `other` after that, `anonymous` for an unnamed operation. Only operations that
    parsed and validated are named (the rest are `none`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def label(self, name: str | None) -> str:
        if name is None:
            return "anonymous"
        if name in self.seen:
            return name
        if len(self.seen) < self.limit and NAME.fullmatch(name):
            self.seen.add(name)
            return name
        return "other"


class PoolWatch:
    """One request pool's figures for the gauges. Requests count themselves in and out of
    `waiting` (app.db.Database); the rest is asked of asyncpg once a second, off the request path."""

    def __init__(self, pool=None) -> None:
        self.pool = pool  # set once the app has opened it
        self.waiting = 0

    def waited(self, seconds: float) -> None:
        POOL_WAIT.observe(seconds)

    def sample(self) -> None:
        if self.pool is None:
            return
        size = self.pool.get_size()
        POOL_SIZE.set(size)
        POOL_IN_USE.set(size - self.pool.get_idle_size())
        POOL_MAX.set(self.pool.get_max_size())
        POOL_WAITING.set(self.waiting)

    async def run(self, every: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(every)


def exposition() -> bytes:
    """The text /metrics answers: every process's values under `incidents serve`."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


def process_started() -> None:
    """A worker's start: forget the gauges of workers that died without saying so (a crash),
    which would otherwise be added to the live ones' until the server restarts."""
    if not MULTIPROCESS:
        return
    for path in Path(os.environ[MULTIPROC_VARIABLE]).glob("gauge_live*_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        if pid != os.getpid() and not _alive(pid):
            # Workers started together after a crash race to remove the same files.
            with contextlib.suppress(FileNotFoundError):
                multiprocess.mark_process_dead(pid)


def process_stopping() -> None:
    """A worker's orderly exit: its gauges stop counting (its counters stay in the sums)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
