"""Alert ingestion with automatic correlation: the flow behind ingestAlerts.

Each new alert joins the ACTIVE or IN_PROGRESS incident of the most recently detected alert
that shares an entity with it (same kind, case-insensitive value), detected at most `window`
earlier, and writes ALERT_CORRELATED there; otherwise it opens a new incident named after it,
whose log gets INCIDENT_CREATED only (that alert shared no evidence with anything). A batch is
one transaction, and its alerts correlate with each other in the order given. An externalId
seen before in the same scope returns the existing alert unchanged.

An incident that holds `max_alerts` alerts or more takes in no more by correlation (Google
SecOps caps the alerts grouped into one case the same way): a related alert whose most recent
relative is in a full incident counts that evidence as unshared, so it joins another relative's
incident or opens a new one, and the alerts after it that share the evidence join that one.
Without a cap, a busy user or host draws every alert of the day into one incident, which no
analyst can triage and every move into or out of it pays for (README, ingestAlerts). Analysts'
moves and merges are not capped: the cap is on what the machine decides.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from app.config import Settings, settings
from app.domain import activity, models
from app.domain.activity import NewEntry
from app.domain.errors import Problem, ProblemCode, Refused
from app.domain.incidents import is_visible
from app.domain.models import (
    ALERT_COLUMNS,
    INCIDENT_COLUMNS,
    SEVERITY_ORDER,
    ActivityEntry,
    ActivityKind,
    Alert,
    EntityKind,
    Incident,
)
from app.domain.text import TextLimit, storable
from app.domain.viewers import SYSTEM_ACTOR, Viewer

MAX_ENTITIES = 100


@dataclass(frozen=True)
class Correlation:
    """How ingestion correlates (CORRELATION_WINDOW_HOURS, CORRELATION_ACROSS_SCOPES and
    CORRELATION_MAX_ALERTS; see the module's docstring)."""

    window: timedelta = timedelta(hours=24)
    across_scopes: bool = False
    max_alerts: int = Settings.correlation_max_alerts

    @classmethod
    def of(cls, settings: Settings) -> Correlation:
        return cls(
            timedelta(hours=settings.correlation_window_hours),
            settings.correlation_across_scopes,
            settings.correlation_max_alerts,
        )


# Characters, and UTF-8 bytes where a btree holds the text (README, Security and limits).
# (scope, external_id) is one entry of the alerts' unique key: a 600-byte scope and an id of 500
# four-byte characters (2,000 bytes) fit it with their headers. An entity value is one entry of
# alert_entities' primary key, and its lower() one of the correlation index; lower() can double
# the bytes (a Turkish locale folds "I" into "ı"; C.UTF-8 and ICU turn "Ⱥ" into 3-byte "ⱥ"),
# so 1,300 bytes keep both within 2,600. Titles and categories are in no btree.
LIMITS = {
    "externalId": TextLimit(500),
    "title": TextLimit(1000),
    "category": TextLimit(200),
    "scope": TextLimit(200, utf8_bytes=600),
}
ENTITY_VALUE = TextLimit(1000, utf8_bytes=1300)
ENTITY_KINDS = tuple(EntityKind)

# Two batches carrying the same externalId take turns: the second sees the first's alert.
# An externalId is a source's name for an alert within its scope: the same id in another scope
# is another alert, so a source learns nothing of scopes it may not read.
LOCK_EXTERNAL_IDS = """
SELECT pg_advisory_xact_lock(k)
  FROM (SELECT DISTINCT hashtextextended(s || chr(31) || x, 7411) AS k
          FROM unnest($1::text[], $2::text[]) AS t(s, x) ORDER BY 1) l
"""
EXISTING = f"""
SELECT {ALERT_COLUMNS} FROM alerts a
 WHERE (a.scope, a.external_id) IN (SELECT s, x FROM unnest($1::text[], $2::text[]) AS t(s, x))
"""
# Ids for the new alerts, in the batch's order (a sequence hands them out increasing).
NEW_ALERT_IDS = """
SELECT now() AS now,
       array(SELECT nextval(pg_get_serial_sequence('alerts', 'id')) FROM generate_series(1, $1)) AS ids
"""
NEW_INCIDENT_IDS = "SELECT nextval(pg_get_serial_sequence('incidents', 'id')) AS id FROM generate_series(1, $1)"
# For every evidence row of the batch: its case-folded key, and the most recently detected
# stored alert sharing it, within the window, in an ACTIVE or IN_PROGRESS incident.
CANDIDATES = """
SELECT e.n, lower(e.value) AS key, m.alert_id, m.detected_at, a.incident_id, m.alert_count
  FROM unnest($1::entity_kind[], $2::text[], $3::timestamptz[], $5::text[])
       WITH ORDINALITY AS e(kind, value, detected, scope, n)
  LEFT JOIN LATERAL (
      SELECT ae.alert_id, ae.detected_at, i.alert_count
        FROM alert_entities ae
        JOIN alerts a ON a.id = ae.alert_id
        JOIN incidents i ON i.id = a.incident_id
       WHERE ae.kind = e.kind AND ae.value_key = lower(e.value)
         AND ae.detected_at <= e.detected AND ae.detected_at >= e.detected - $4::interval
         AND i.status IN ('active', 'in_progress')
         AND ($6::boolean OR i.alert_scopes = ARRAY[e.scope])
       ORDER BY ae.detected_at DESC, ae.alert_id DESC
       LIMIT 1
  ) m ON true
  LEFT JOIN alerts a ON a.id = m.alert_id
 ORDER BY e.n
"""
LOCK_OPEN_INCIDENTS = """
SELECT id, alert_scopes, alert_count FROM incidents WHERE id = ANY($1::bigint[]) AND status IN ('active', 'in_progress')
 ORDER BY id FOR UPDATE
"""
# New incidents are written with their final derived fields (their evidence bits, 0026, are set
# by the entities' trigger, a second write of the rows whose entities bring new values).
CREATE_INCIDENTS = """
INSERT INTO incidents (id, name, severity, last_activity_at, alert_count, alert_scopes, name_scopes)
SELECT t.id, t.name, t.severity, t.last_activity_at, t.alert_count,
       (SELECT array_agg(DISTINCT m.scope ORDER BY m.scope)
          FROM unnest($6::bigint[], $7::text[]) AS m(incident_id, scope) WHERE m.incident_id = t.id),
       ARRAY[t.name_scope]
  FROM unnest($1::bigint[], $2::text[], $3::severity[], $4::timestamptz[], $5::integer[], $8::text[])
       AS t(id, name, severity, last_activity_at, alert_count, name_scope)
"""
INSERT_ALERTS = f"""
INSERT INTO alerts AS a (id, external_id, title, severity, category, scope, detected_at, incident_id)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::severity[], $5::text[], $6::text[],
                     $7::timestamptz[], $8::bigint[])
RETURNING {ALERT_COLUMNS}
"""
INSERT_ENTITIES = """
INSERT INTO alert_entities (alert_id, kind, value, detected_at)
SELECT * FROM unnest($1::bigint[], $2::entity_kind[], $3::text[], $4::timestamptz[])
ON CONFLICT DO NOTHING
"""
# What adding the alerts one by one would have left: the highest severity, the latest activity,
# the count, and the sorted distinct scopes.
ADD_TO_INCIDENTS = """
UPDATE incidents i
   SET severity = greatest(i.severity, s.severity),
       last_activity_at = greatest(i.last_activity_at, s.detected_at),
       alert_count = i.alert_count + s.n,
       alert_scopes = (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(i.alert_scopes || s.scopes) x)
  FROM (SELECT incident_id, max(severity) AS severity, max(detected_at) AS detected_at, count(*)::integer AS n,
               array_agg(DISTINCT scope) AS scopes
          FROM unnest($1::bigint[], $2::severity[], $3::timestamptz[], $4::text[])
               AS t(incident_id, severity, detected_at, scope)
         GROUP BY incident_id) s
 WHERE i.id = s.incident_id
"""
INCIDENTS_BY_ID = f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.id = ANY($1::bigint[]) ORDER BY i.id"


@dataclass(frozen=True)
class AlertIn:
    external_id: str
    title: str
    severity: str
    category: str
    scope: str = "default"
    detected_at: datetime | None = None
    entities: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class IngestResult:
    alerts: list[Alert]
    incidents: list[Incident]
    entries: list[ActivityEntry]
    stored: int = 0  # new alerts this call stored (the others were known by their externalId)


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)  # clocks of detection sources drift; a year-9999 alert would
# stay at the top of the queue for good


def _plausible(moment: datetime) -> bool:
    if moment.tzinfo is None:
        return False
    try:
        return EARLIEST <= moment.astimezone(UTC) <= datetime.now(UTC) + FUTURE_SLACK
    except OverflowError:
        return False


def _key(item: AlertIn) -> tuple[str, str]:
    return item.scope.strip(), item.external_id


def _check(viewer: Viewer, batch: list[AlertIn]) -> None:
    if not viewer.can_ingest:
        raise Refused([Problem(ProblemCode.FORBIDDEN, "You may not ingest alerts.")])
    most = settings().ingest_max_alerts
    if not 1 <= len(batch) <= most:
        raise Refused(
            [Problem(ProblemCode.INVALID_INPUT, f"Send 1 to {most} alerts at once; got {len(batch)}.", "alerts")]
        )
    problems = []
    for n, a in enumerate(batch):
        named = [a.external_id] if storable(a.external_id) else []
        values = {"externalId": a.external_id, "title": a.title, "category": a.category, "scope": a.scope}
        for name, value in values.items():
            if not LIMITS[name].admits(value):
                problems.append(
                    Problem(ProblemCode.INVALID_INPUT, f"{name} must be {LIMITS[name]}.", f"alerts.{n}.{name}", named)
                )
        if a.detected_at is not None and not _plausible(a.detected_at):
            problems.append(
                Problem(
                    ProblemCode.INVALID_INPUT,
                    "detectedAt must be a time with a zone, from 1970 to a day from now.",
                    f"alerts.{n}.detectedAt",
                    named,
                )
            )
        if a.severity not in SEVERITY_ORDER:
            problems.append(Problem(ProblemCode.INVALID_INPUT, "Unknown severity.", f"alerts.{n}.severity", named))
        if len(a.entities) > MAX_ENTITIES:
            problems.append(
                Problem(
                    ProblemCode.INVALID_INPUT,
                    f"At most {MAX_ENTITIES} entities per alert.",
                    f"alerts.{n}.entities",
                    named,
                )
            )
        for kind, value in a.entities:
            if kind not in ENTITY_KINDS or not ENTITY_VALUE.admits(value):
                problems.append(
                    Problem(
                        ProblemCode.INVALID_INPUT,
                        f"Entity values must be {ENTITY_VALUE}.",
                        f"alerts.{n}.entities",
                        named,
                    )
                )
                break
    if problems:
        raise Refused(problems)


@dataclass
class _New:
    """A new alert of the batch, and what correlation decided for it."""

    item: AlertIn
    detected: datetime
    entities: list[tuple[str, str]]
    incident_id: int | None = None  # a stored incident it joins, or (later) its new incident
    joins: _New | None = None  # an earlier alert of the batch whose incident it joins
    creates: bool = False  # it opens an incident of its own

    @property
    def scope(self) -> str:
        return self.item.scope.strip()


async def ingest_alerts(
    *,
    conn: asyncpg.Connection,
    viewer: Viewer,
    batch: list[AlertIn],
    correlation: Correlation,
) -> IngestResult:
    """Store new alerts and correlate each into an incident. Runs in the caller's transaction.

    A fixed number of statements per batch, whatever its size: the stored alerts each new one
    could join are looked up at once, and the batch's own alerts are correlated with each other,
    in order, in memory, by the same rule.
    """
    _check(viewer, batch)
    keys = [_key(a) for a in batch]
    scopes, external_ids = [k[0] for k in keys], [k[1] for k in keys]
    await conn.execute(LOCK_EXTERNAL_IDS, scopes, external_ids)
    known = {(r["scope"], r["external_id"]): models.alert(r) for r in await conn.fetch(EXISTING, scopes, external_ids)}
    fresh: dict[tuple[str, str], AlertIn] = {}
    for item in batch:
        if _key(item) not in known:
            fresh.setdefault(_key(item), item)  # the first of a repeated externalId counts
    written: list[ActivityEntry] = []
    touched: list[int] = []
    if fresh:
        allocated = await conn.fetchrow(NEW_ALERT_IDS, len(fresh))
        new = [
            _New(
                item,
                item.detected_at or allocated["now"],
                list(dict.fromkeys((k, v.strip()) for k, v in item.entities)),
            )
            for item in fresh.values()
        ]
        await _correlate(conn, new, correlation)
        created = [n for n in new if n.creates]
        if created:
            incident_ids = sorted(r["id"] for r in await conn.fetch(NEW_INCIDENT_IDS, len(created)))
            for n, incident_id in zip(created, incident_ids, strict=True):
                n.incident_id = incident_id
        for n in new:  # in order: an earlier alert's incident is known by now
            if n.joins is not None:
                n.incident_id = n.joins.incident_id
        if created:
            members: dict[int, list[_New]] = defaultdict(list)
            for n in new:
                members[n.incident_id].append(n)
            groups = [members[n.incident_id] for n in created]
            await conn.execute(
                CREATE_INCIDENTS,
                [n.incident_id for n in created],
                [n.item.title.strip() for n in created],
                [max((m.item.severity for m in g), key=SEVERITY_ORDER.index) for g in groups],
                [max(m.detected for m in g) for g in groups],
                [len(g) for g in groups],
                [m.incident_id for g in groups for m in g],
                [m.scope for g in groups for m in g],
                [n.scope for n in created],  # named after the alert that opened it
            )
        rows = await conn.fetch(
            INSERT_ALERTS,
            sorted(allocated["ids"]),
            [n.item.external_id for n in new],
            [n.item.title.strip() for n in new],
            [n.item.severity for n in new],
            [n.item.category.strip() for n in new],
            [n.scope for n in new],
            [n.detected for n in new],
            [n.incident_id for n in new],
        )
        for row in rows:
            known[(row["scope"], row["external_id"])] = models.alert(row)
        evidence = [(known[_key(n.item)].id, k, v, n.detected) for n in new for k, v in n.entities]
        if evidence:
            await conn.execute(INSERT_ENTITIES, *([e[c] for e in evidence] for c in range(4)))
        joining = [n for n in new if not n.creates and (n.joins is None or not _root(n).creates)]
        if joining:
            await conn.execute(
                ADD_TO_INCIDENTS,
                [n.incident_id for n in joining],
                [n.item.severity for n in joining],
                [n.detected for n in joining],
                [n.scope for n in joining],
            )
        entries = [
            NewEntry(
                n.incident_id,
                ActivityKind.INCIDENT_CREATED if n.creates else ActivityKind.ALERT_CORRELATED,
                SYSTEM_ACTOR,
                alert_id=known[_key(n.item)].id,
            )
            for n in new
        ]
        written = await activity.write(conn=conn, entries=entries)
        touched = sorted({n.incident_id for n in new})
    incidents = [models.incident(r) for r in await conn.fetch(INCIDENTS_BY_ID, touched)] if touched else []
    # The payload shows only what the viewer may read, like every query: a source with the
    # ingest permission but no read grant stores its alerts and learns nothing of the incidents
    # they joined (whose other alerts it may not read).
    visible = {i.id for i in incidents if is_visible(i, viewer)}
    return IngestResult(
        alerts=[known[k] for k in keys if viewer.can_read(k[0])],
        incidents=[i for i in incidents if i.id in visible],
        entries=[e for e in written if e.incident_id in visible],
        stored=len(fresh),
    )


def _incident_of(candidate: tuple) -> int | tuple[str, int]:
    """The incident a correlation candidate is in: a stored one's id, or ("new", id(alert)) for
    the one the batch's alert opens."""
    if candidate[1] == 0:
        return candidate[3]
    root = _root(candidate[3])
    return ("new", id(root)) if root.creates else root.incident_id


def _root(n: _New) -> _New:
    """The alert of the batch whose incident this one joined, following joins back."""
    while n.joins is not None:
        n = n.joins
    return n


async def _correlate(conn: asyncpg.Connection, new: list[_New], correlation: Correlation) -> None:
    """Decide, in batch order, the incident each new alert joins.

    For each of its entities the candidate is the most recently detected related alert: the one
    the database finds, or a batch's earlier alert sharing it, ties going to the higher alert id
    (the batch's alerts get higher ids than any stored one, in batch order). A candidate whose
    incident is full (`max_alerts`, counting the batch's alerts that joined it) counts for
    nothing; of the others the most recent wins. Unless across_scopes, a stored candidate counts
    only when every alert of its incident is in the new alert's scope: otherwise the answer would
    tell a source what other scopes hold, and show their incident to its readers. The stored
    incidents chosen are then locked; if one was closed, took in another scope, or filled up
    meanwhile, decide again (a count that fell meanwhile is not looked for: the decision stands
    as of the lookup).
    """
    window, across_scopes, most = correlation.window, correlation.across_scopes, correlation.max_alerts
    evidence = [(n, k, v) for n in new for k, v in n.entities]
    for _ in range(10):
        stored: dict[int, list[tuple[tuple[str, str], tuple | None]]] = {id(n): [] for n in new}
        found: dict[int, int] = {}  # the alerts each stored candidate incident held at the lookup
        if evidence:
            rows = await conn.fetch(
                CANDIDATES,
                [k for _, k, _ in evidence],
                [v for _, _, v in evidence],
                [n.detected for n, _, _ in evidence],
                window,
                [n.scope for n, _, _ in evidence],
                across_scopes,
            )
            for (n, kind, _), row in zip(evidence, rows, strict=True):
                match = (row["detected_at"], 0, row["alert_id"], row["incident_id"]) if row["alert_id"] else None
                stored[id(n)].append(((kind, row["key"]), match))
                if match:
                    found[row["incident_id"]] = row["alert_count"]
        held: dict[int | tuple[str, int], int] = dict(found)  # and with the batch's alerts (_incident_of)
        seen: dict[tuple[str, str], list[tuple[int, _New]]] = defaultdict(list)
        for position, n in enumerate(new):
            best: tuple | None = None
            for key, match in stored[id(n)]:
                candidates = [match] if match else []
                candidates += [
                    (e.detected, 1, p, e)
                    for p, e in seen[key]
                    if n.detected - window <= e.detected <= n.detected and (across_scopes or e.scope == n.scope)
                ]
                latest = max(candidates, key=lambda c: c[:3], default=None)
                if latest is not None and held[_incident_of(latest)] < most and (best is None or latest[:3] > best[:3]):
                    best = latest
            n.incident_id, n.joins, n.creates = None, None, best is None
            if best is not None and best[1] == 0:
                n.incident_id = best[3]
            elif best is not None:
                n.joins = best[3]
            if n.creates:
                held["new", id(n)] = 1
            else:
                held[_incident_of(best)] += 1
            for key, _ in stored[id(n)]:
                seen[key].append((position, n))
        chosen = sorted({n.incident_id for n in new if n.incident_id is not None})
        if not chosen:
            return
        locked = {r["id"]: r for r in await conn.fetch(LOCK_OPEN_INCIDENTS, chosen)}
        if (
            len(locked) == len(chosen)
            and (
                across_scopes
                or all(locked[n.incident_id]["alert_scopes"] == [n.scope] for n in new if n.incident_id is not None)
            )
            # Decided with the count the lock found, or with one that gives the same decisions.
            and all(
                locked[i]["alert_count"] == found[i] or locked[i]["alert_count"] + held[i] - found[i] <= most
                for i in chosen
            )
        ):
            return
    raise asyncpg.SerializationError("incidents kept closing while alerts were correlated")
