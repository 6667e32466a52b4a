"""Moves, merges and reverts at once (issue 14), against two real `incidents serve` processes.

Sixteen clients mix linkAlerts, mergeIncidents and revertMove over the same few dozen alerts and
dozen incidents, alternating between two server processes on the test database (one on the lean
path, one on graphql-core), for a bounded number of operations and seconds. What each client
does is drawn from a seeded random generator; what it acts on is read from the database at that
moment, so runs differ in detail but not in kind. Afterwards the database must agree with itself
and with what the clients were told:
- every alert is in exactly one incident, and no redirected incident holds one; following
  redirects ends, within the number of incidents, at an incident that is not redirected (chains
  are history: B merged into A, A later into C);
- every incident's count, severity, last activity and scopes are its alerts' (an emptied one
  keeps those of the alerts it last held), and its status is the one its log last gave it;
- every alert's history (its move items, move by move) starts where ingestion put it, each step
  starts where the last one ended, and the last ends where the alert is; the API's
  `Alert.history` says the same; a revert's items are its move's reversed, and none of those
  alerts moved in between; a merge left none of its sources holding an alert;
- the logs balance: a LINK writes ALERT_UNLINKED and ALERT_LINKED for each item; a MERGE one
  summary entry per source on each side (INCIDENT_REDIRECTED, INCIDENT_MERGED) with its count; a
  REVERT one per incident and counterpart on each side (ALERTS_SENT_BACK, ALERTS_RETURNED), and
  INCIDENT_UNMERGED or the merge's entries again when it undoes or redoes a merge; every entry a
  move wrote points at it, with its actor and comment;
- no client got an error that was not a payload error it could expect: no deadlock, no
  serialization failure, no INTERNAL_SERVER_ERROR. The outcomes are counted and printed (-s).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from app.domain import ids, users
from tests.conftest import alert_id, alert_in, inc, number_of
from tests.live import Server, serving

SEED = 14
CLIENTS = 16
OPS_PER_CLIENT = 24
WORKLOAD_SECONDS = 20.0  # no operation starts after this; the test stays well under a minute
GROUPS = 12  # incidents the alerts start in
ALERTS_PER_GROUP = 5
REVERT_SHARE, MERGE_SHARE = 0.3, 0.15  # the rest are linkAlerts
CREATE_NEW_SHARE = 0.25  # of the linkAlerts: new incidents, for merges to take in
KEY_SHARE = 0.5  # operations sent with an idempotencyKey
REPLAY_SHARE = 0.2  # of those that succeeded: sent again, to the other server
SEVERITIES = ["informational", "low", "medium", "high"]
REQUEST_TIMEOUT = 30.0
ANALYSTS = ("analyst-1", "analyst-2")

# Payload errors a client can expect when others act on the same incidents at the same time.
EXPECTED = {
    "linkAlerts": {"TARGET_NOT_LINKABLE"},  # the target was merged meanwhile
    "mergeIncidents": {"ALREADY_REDIRECTED"},  # one of them was merged meanwhile
    # an alert moved since, or an incident it would send alerts back to was merged since, or one it
    # would merge again was brought alerts since
    "revertMove": {"ALREADY_REVERTED", "ALERT_MOVED_SINCE", "INCIDENT_MERGED_SINCE", "INCIDENT_CHANGED_SINCE"},
}

MOVE_FIELDS = "move { id kind reverts { id } revertedBy { id } }"
LINK = f"""
mutation($ids: [ID!]!, $target: LinkTarget!, $comment: String!, $key: String) {{
  linkAlerts(alertIds: $ids, target: $target, comment: $comment, idempotencyKey: $key) {{
    targetIncident {{ id status }}
    alerts {{ id incident {{ id }} }}
    {MOVE_FIELDS}
    errors {{ code message }}
  }}
}}
"""
MERGE = f"""
mutation($ids: [ID!]!, $target: ID, $comment: String!, $reasons: [MergeReason!], $key: String) {{
  mergeIncidents(incidentIds: $ids, targetIncidentId: $target, comment: $comment, reasons: $reasons,
                 idempotencyKey: $key) {{
    target {{ id status alertCount }}
    sources {{ id status alertCount redirectIncident {{ id }} }}
    {MOVE_FIELDS}
    errors {{ code message incidentIds }}
  }}
}}
"""
REVERT = f"""
mutation($move: ID!, $comment: String!, $key: String) {{
  revertMove(moveId: $move, comment: $comment, idempotencyKey: $key) {{
    {MOVE_FIELDS}
    reverted {{ id revertedBy {{ id }} }}
    errors {{ code message alertIds moveIds }}
  }}
}}
"""
HISTORY = """
query($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Alert { id incident { id } history { incident { id } move { id kind } } } }
}
"""
DEADLOCKS = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
# The latest moves not reverted whose alerts have not moved since.
REVERTIBLE = """
SELECT m.id FROM moves m
 WHERE NOT EXISTS (SELECT 1 FROM moves r WHERE r.reverts_move_id = m.id)
   AND NOT EXISTS (SELECT 1 FROM move_items mi JOIN move_items later ON later.alert_id = mi.alert_id
                    WHERE mi.move_id = m.id AND later.move_id > m.id)
 ORDER BY m.id DESC LIMIT 10
"""
DOCUMENTS = {"linkAlerts": LINK, "mergeIncidents": MERGE, "revertMove": REVERT}


@dataclass
class Call:
    """One request a client made, and what came back."""

    mutation: str
    variables: dict
    server: int
    status: int = 0
    body: dict = field(default_factory=dict)
    failure: str = ""  # no HTTP answer

    @property
    def payload(self) -> dict:
        return ((self.body.get("data") or {}).get(self.mutation)) or {}

    @property
    def move(self) -> int | None:
        move = self.payload.get("move")
        return number_of(move["id"]) if move else None

    def outcome(self) -> str:
        """'ok', 'no move' (a linkAlerts with nothing to move), the first payload error's code, or
        'failed' (no answer, or no payload)."""
        if self.failure or self.status != 200 or self.body.get("errors"):
            return "failed"
        errors = self.payload.get("errors")
        if errors:
            return errors[0]["code"]
        return "ok" if self.move is not None else "no move"

    def problem(self) -> str | None:
        """What makes this answer one no client should ever get, if anything."""
        if self.failure:
            return self.failure
        if self.status != 200:
            return f"HTTP {self.status}: {self.body!r:.500}"
        if self.body.get("errors"):
            return f"GraphQL errors: {self.body['errors']!r:.800}"
        codes = {e["code"] for e in self.payload.get("errors", [])}
        if unexpected := codes - EXPECTED[self.mutation]:
            return f"payload errors {sorted(unexpected)}: {self.payload['errors']!r:.800}"
        return None


@pytest.fixture(scope="module")
def servers(database_url: str, tmp_path_factory):
    """Two `incidents serve` processes on the test database, one on each execution path."""
    logs = tmp_path_factory.mktemp("move-servers")
    try:
        with serving(database_url, logs, [{"GRAPHQL_LEAN_PATH": lean} for lean in ("true", "false")]) as started:
            yield started
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(str(exc))


async def _setup(ingest) -> dict[int, int]:
    """GROUPS incidents of ALERTS_PER_GROUP alerts (a device each shares), of mixed severities and
    two scopes; returns each alert's first incident."""
    rng = random.Random(SEED)
    stored = await ingest(
        *(
            alert_in(
                f"g{g}-a{k}",
                f"Alert {k} of group {g}",
                severity=rng.choice(SEVERITIES),
                scope="finance" if (g + k) % 4 == 0 else "default",
                minutes=g * 60 + k * 7 + rng.random(),
                entities=[("device", f"host-group-{g}")],
            )
            for g in range(GROUPS)
            for k in range(ALERTS_PER_GROUP)
        ),
        across_scopes=True,
    )
    first = {a.id: a.incident_id for a in stored}
    assert len(set(first.values())) == GROUPS, "set-up: each group should be one incident"
    return first


class Workload:
    """The clients' shared view: the calls made and the moves made, in the order they were told."""

    def __init__(self, servers: list[Server], tokens: list[str], pool: asyncpg.Pool, alert_ids: list[int]) -> None:
        self.servers, self.tokens, self.pool, self.alert_ids = servers, tokens, pool, alert_ids
        self.calls: list[Call] = []
        self.replays: list[tuple[Call, Call]] = []
        self.moves: list[int] = []  # every move a client was told it made, in that order
        self.deadline = 0.0

    async def incidents(self) -> tuple[list[int], list[int]]:
        """The incidents as they are now: those that take alerts, and those merged away."""
        rows = await self.pool.fetch("SELECT id, status = 'redirected' AS redirected FROM incidents ORDER BY id")
        return [r["id"] for r in rows if not r["redirected"]], [r["id"] for r in rows if r["redirected"]]

    async def choose(self, rng: random.Random, name: str, mine: int | None) -> tuple[str, dict]:
        """One operation: its mutation and variables (comment unique, key sometimes). mine: the
        client's own last move, if it made one."""
        roll = rng.random()
        open_, merged = await self.incidents()
        if roll < REVERT_SHARE and self.moves:
            # Undo of one's own last move, as the confirmation offers it; or one of the latest
            # moves that are revertible now (others may revert or move them first), or any.
            pick = rng.random()
            revertible = [r["id"] for r in await self.pool.fetch(REVERTIBLE)] if 0.4 <= pick < 0.8 else []
            if mine is not None and pick < 0.4:
                move = mine
            elif revertible:
                move = rng.choice(revertible)
            else:
                move = rng.choice(self.moves)
            mutation, variables = "revertMove", {"move": ids.typed_id(ids.MOVE, move)}
        elif roll < REVERT_SHARE + MERGE_SHARE and len(open_) >= 2:
            chosen = rng.sample(open_, min(len(open_), rng.choice((2, 2, 3))))
            if merged and rng.random() < 0.05:  # one merged away already: ALREADY_REDIRECTED
                chosen[-1] = rng.choice(merged)
            mutation = "mergeIncidents"
            variables = {
                "ids": [inc(i) for i in chosen],
                "target": inc(chosen[0]) if rng.random() < 0.5 else None,
                "reasons": rng.sample(["DUPLICATE", "SAME_ACTOR", "SAME_CAMPAIGN"], rng.randint(0, 2)),
            }
        else:
            if rng.random() < CREATE_NEW_SHARE:
                target: dict = {"createNew": True}
            else:
                # Mostly one that takes alerts; sometimes any, maybe merged away (TARGET_NOT_LINKABLE).
                pick = open_ if rng.random() < 0.9 else open_ + merged
                target = {"existingIncidentId": inc(rng.choice(pick))}
            mutation = "linkAlerts"
            variables = {"ids": [alert_id(a) for a in rng.sample(self.alert_ids, rng.randint(1, 6))], "target": target}
        variables["comment"] = f"{name}: {mutation}"
        variables["key"] = f"{name}-key" if rng.random() < KEY_SHARE else None
        return mutation, variables

    async def send(self, http: httpx.AsyncClient, token: str, mutation: str, variables: dict, server: int) -> Call:
        call = Call(mutation, variables, server)
        try:
            response = await http.post(
                f"{self.servers[server].url}/graphql",
                json={"query": DOCUMENTS[mutation], "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            call.failure = f"no HTTP answer: {type(exc).__name__}: {exc}"
            return call
        call.status = response.status_code
        try:
            call.body = response.json()
        except ValueError:
            call.body = {"text": response.text[:500]}
        return call

    async def client(self, n: int) -> None:
        rng = random.Random(SEED * 1000 + n)
        token = self.tokens[n % len(self.tokens)]
        mine = None
        # Idle connections are dropped well before the servers' keep-alive timeout (uvicorn's 5 s),
        # so that no request races a server closing its connection.
        limits = httpx.Limits(keepalive_expiry=1.0)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits, trust_env=False) as http:
            for i in range(OPS_PER_CLIENT):
                if time.monotonic() > self.deadline:
                    return
                mutation, variables = await self.choose(rng, f"client {n} op {i}", mine)
                server = (n + i) % len(self.servers)
                call = await self.send(http, token, mutation, variables, server)
                self.calls.append(call)
                if call.problem() is None and call.move is not None:
                    self.moves.append(call.move)
                    mine = call.move
                    if variables["key"] and rng.random() < REPLAY_SHARE:
                        # The same key and input, to the other server: the first result, nothing new.
                        replay = await self.send(http, token, mutation, variables, 1 - server)
                        self.replays.append((call, replay))


def _counts(calls: list[Call]) -> Counter:
    return Counter(f"{c.mutation} {c.outcome()}" for c in calls)


async def test_moves_merges_and_reverts_from_16_clients_on_two_servers_keep_every_invariant(servers, pool, ingest):
    first = await _setup(ingest)
    tokens = []
    for name in ANALYSTS:
        async with pool.acquire() as conn:
            tokens.append(await users.add_user(conn=conn, name=name, grants=[("*", "write")]))
    workload = Workload(servers, tokens, pool, sorted(first))

    deadlocks = await pool.fetchval(DEADLOCKS)
    started = time.monotonic()
    workload.deadline = started + WORKLOAD_SECONDS
    await asyncio.wait_for(
        asyncio.gather(*(workload.client(n) for n in range(CLIENTS))), WORKLOAD_SECONDS + 2 * REQUEST_TIMEOUT
    )
    elapsed = time.monotonic() - started
    await asyncio.sleep(1)  # PostgreSQL's statistics are flushed within a second
    deadlocks = await pool.fetchval(DEADLOCKS) - deadlocks
    counts = _counts(workload.calls)
    kinds = {c.move: c.mutation for c in workload.calls if c.outcome() == "ok"}
    for c in workload.calls:
        if c.mutation == "revertMove" and c.outcome() == "ok":
            counts[f"revertMove ok, of a {kinds.get(number_of(c.variables['move']), 'move no one was told of')}"] += 1
    summary = (
        f"{len(workload.calls)} calls and {len(workload.replays)} replays in {elapsed:.1f} s (seed {SEED}),"
        f" {deadlocks} deadlocks found by PostgreSQL and retried by the servers: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    )
    print(f"\n{summary}")

    # No client got an error it could not expect: no deadlock or serialization failure reached one.
    problems = [f"{c.mutation} {c.variables}: {p}" for c in workload.calls if (p := c.problem())]
    problems += [
        f"replay of {c.mutation} {c.variables}: {p}"
        for c, r in workload.replays
        if (p := r.problem() or (None if r.move == c.move else f"move {r.move}, first {c.move}"))
    ]
    assert not problems, "\n".join(
        [summary, *problems[:10], *(f"--- {s.log_path.name}:\n{s.log()[-4000:]}" for s in servers)]
    )
    # The workload did what it is for: each mutation succeeded, and reverts met later moves.
    for wanted in ("linkAlerts ok", "mergeIncidents ok", "revertMove ok", "revertMove ALERT_MOVED_SINCE"):
        assert counts[wanted] >= 3, summary

    for call in workload.calls:
        if call.outcome() == "ok":
            _check_payload(call)
    await _check_database(pool, first, workload)
    await _check_history_api(servers[0], tokens[0], pool, first)
    await _check_redirects(pool)


def _check_payload(call: Call) -> None:
    """What one successful answer says, as far as it can be true whatever happened next."""
    payload, move = call.payload, call.payload["move"]
    kind = {"linkAlerts": "LINK", "mergeIncidents": "MERGE", "revertMove": "REVERT"}[call.mutation]
    assert move["kind"] == kind, payload
    if call.mutation == "linkAlerts":
        target = payload["targetIncident"]["id"]
        assert {a["incident"]["id"] for a in payload["alerts"]} == {target}, payload
        if "existingIncidentId" in call.variables["target"]:
            assert target == call.variables["target"]["existingIncidentId"], payload
    elif call.mutation == "mergeIncidents":
        target = payload["target"]["id"]
        assert target in call.variables["ids"], payload
        # Reopened when alerts arrived; a RESOLVED target merged with empty incidents stays so.
        allowed = ("ACTIVE",) if payload["target"]["alertCount"] else ("ACTIVE", "RESOLVED")
        assert payload["target"]["status"] in allowed, payload
        if call.variables["target"]:
            assert target == call.variables["target"], payload
        assert sorted(s["id"] for s in payload["sources"]) == sorted(set(call.variables["ids"]) - {target}), payload
        for source in payload["sources"]:
            assert source["status"] == "REDIRECTED" and source["alertCount"] == 0, payload
            assert source["redirectIncident"] == {"id": target}, payload
    else:
        assert move["reverts"] == {"id": call.variables["move"]}, payload
        assert payload["reverted"] == {"id": call.variables["move"], "revertedBy": {"id": move["id"]}}, payload


async def _check_database(pool: asyncpg.Pool, first: dict[int, int], workload: Workload) -> None:
    alerts = {
        r["id"]: r for r in await pool.fetch("SELECT id, incident_id, severity::text, detected_at, scope FROM alerts")
    }
    incidents = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id, status::text, severity::text, last_activity_at, alert_count, alert_scopes,"
            " redirect_incident_id FROM incidents"
        )
    }
    moves = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id, kind::text, actor, comment, reasons::text[] AS reasons, target_incident_id,"
            " created_target, reverts_move_id, source_incident_ids FROM moves ORDER BY id"
        )
    }
    items = await pool.fetch(
        "SELECT move_id, alert_id, from_incident_id, to_incident_id FROM move_items ORDER BY move_id, alert_id"
    )
    log = await pool.fetch(
        "SELECT id, incident_id, kind::text, actor, comment, alert_id, other_incident_id, alert_count, move_id"
        " FROM activity_log ORDER BY id"
    )

    # Every alert is where it was, in exactly one existing incident.
    assert sorted(alerts) == sorted(first)
    assert all(a["incident_id"] in incidents for a in alerts.values())

    # What the clients were told moved is what the database holds: no lost move, no extra one.
    told = {c.move: c for c in workload.calls if c.outcome() == "ok"}
    assert sorted(told) == sorted(moves), "moves the clients were told of differ from the table's"
    for number, call in told.items():
        move = moves[number]
        assert move["comment"] == call.variables["comment"] and move["actor"] in ANALYSTS, dict(move)
        assert move["kind"] == {"linkAlerts": "link", "mergeIncidents": "merge", "revertMove": "revert"}[call.mutation]
        if call.mutation == "mergeIncidents":
            assert sorted(move["reasons"]) == sorted(r.lower() for r in call.variables["reasons"]), dict(move)

    items_of: dict[int, list[asyncpg.Record]] = defaultdict(list)  # by move, by alert
    history: dict[int, list[asyncpg.Record]] = defaultdict(list)  # by alert, by move
    for item in items:
        items_of[item["move_id"]].append(item)
        history[item["alert_id"]].append(item)
    assert set(items_of) <= set(moves)
    for number in moves:
        # Only a merge of incidents holding no alert (and its reverts) moves nothing.
        assert items_of[number] or _origin(moves, number)[0]["kind"] == "merge", f"move {number} moved nothing"

    # Each alert's history starts where ingestion put it, each step where the last ended, and the
    # last ends where the alert is.
    for number, start in first.items():
        where = start
        for item in history[number]:
            assert item["from_incident_id"] == where != item["to_incident_id"], (number, dict(item))
            where = item["to_incident_id"]
        assert where == alerts[number]["incident_id"], f"alert {number}: history ends in {where}"

    # A revert moves its move's alerts back, none of which moved in between (but by moves undone
    # since); a move is reverted once.
    reverted = Counter(m["reverts_move_id"] for m in moves.values() if m["kind"] == "revert")
    assert all(n == 1 for n in reverted.values()), reverted
    for number, move in moves.items():
        if move["kind"] == "revert":
            original = move["reverts_move_id"]
            assert original < number, dict(move)
            assert {(i["alert_id"], i["from_incident_id"], i["to_incident_id"]) for i in items_of[number]} == {
                (i["alert_id"], i["to_incident_id"], i["from_incident_id"]) for i in items_of[original]
            }, f"revert {number} of move {original}"
            for item in items_of[number]:
                steps = [i["move_id"] for i in history[item["alert_id"]]]
                between = steps[steps.index(original) + 1 : steps.index(number)]
                assert _undone(moves, between), f"alert {item['alert_id']} moved since {original}: {between}"
        else:
            targets = {i["to_incident_id"] for i in items_of[number]}
            assert targets <= {move["target_incident_id"]}, dict(move)

    _check_logs(moves, items_of, log, incidents)
    _check_incidents(alerts, incidents, moves, items, first)


def _undone(moves, between: list[int]) -> bool:
    """Whether an alert's moves between a move and its revert undo each other: each one is
    reverted by a later one among them, nested (a revert reverted again counts as a move)."""
    stack: list[int] = []
    for number in between:
        if stack and moves[number]["reverts_move_id"] == stack[-1]:
            stack.pop()
        else:
            stack.append(number)
    return not stack


SUMMARY_KINDS = ("incident_merged", "incident_redirected", "alerts_returned", "alerts_sent_back", "incident_unmerged")
# The statuses an entry leaves its incident in (an unmerged source holding no alert is resolved).
STATUS_AFTER = {
    "incident_created": {"active"},
    "incident_resolved": {"resolved"},
    "incident_reopened": {"active"},
    "incident_redirected": {"redirected"},
    "incident_unmerged": {"active", "resolved"},
}


def _origin(moves, number: int) -> tuple[asyncpg.Record, int]:
    """The first move of the chain of reverts that ends with this one, and how many reverts lie between."""
    depth = 0
    while moves[number]["kind"] == "revert":
        number, depth = moves[number]["reverts_move_id"], depth + 1
    return moves[number], depth


def _expected_summaries(moves, number: int, items: list[asyncpg.Record]) -> Counter:
    """The summary entries a move writes: (kind, incident, other incident, alert count)."""
    move = moves[number]
    pairs = Counter((i["from_incident_id"], i["to_incident_id"]) for i in items)
    out: Counter = Counter()

    def redirected(sources, target) -> None:
        for s in sources:
            n = sum(c for (left, _), c in pairs.items() if left == s)
            out.update([("incident_redirected", s, target, n), ("incident_merged", target, s, n)])

    if move["kind"] == "merge":
        redirected(move["source_incident_ids"], move["target_incident_id"])
    elif move["kind"] == "revert":
        for (left, to), n in pairs.items():
            out.update([("alerts_sent_back", left, to, n), ("alerts_returned", to, left, n)])
        # The merge at the start of the chain: undone by an odd number of reverts, redone by an even one.
        origin, depth = _origin(moves, move["reverts_move_id"])
        if origin["kind"] == "merge" and depth % 2 == 0:
            for s in origin["source_incident_ids"]:
                back = sum(c for (_, to), c in pairs.items() if to == s)
                out[("incident_unmerged", s, origin["target_incident_id"], back)] += 1
        elif origin["kind"] == "merge":
            redirected(origin["source_incident_ids"], origin["target_incident_id"])
    return out


def _check_logs(moves, items_of, log, incidents) -> None:
    """The logs balance: each move wrote the entries its items and sources call for, and each
    incident's status is the one its log last gave it."""
    by_move: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for entry in log:
        if entry["actor"] in ANALYSTS:
            assert entry["move_id"] is not None, f"an entry no move wrote: {dict(entry)}"
        if entry["move_id"] is not None:
            by_move[entry["move_id"]].append(entry)
    assert set(by_move) <= set(moves)
    for number, move in moves.items():
        entries, items = by_move[number], items_of[number]
        for e in entries:
            assert (e["actor"], e["comment"]) == (move["actor"], move["comment"]), (dict(move), dict(e))
        per_alert = Counter(
            (e["kind"], e["alert_id"], e["incident_id"], e["other_incident_id"])
            for e in entries
            if e["kind"] in ("alert_linked", "alert_unlinked")
        )
        if move["kind"] == "link":
            expected = Counter(
                [("alert_unlinked", i["alert_id"], i["from_incident_id"], i["to_incident_id"]) for i in items]
                + [("alert_linked", i["alert_id"], i["to_incident_id"], i["from_incident_id"]) for i in items]
            )
        else:  # merges and reverts write summaries instead
            expected = Counter()
        assert per_alert == expected, f"{move['kind']} {number}: ALERT_LINKED/ALERT_UNLINKED entries differ"
        summaries = Counter(
            (e["kind"], e["incident_id"], e["other_incident_id"], e["alert_count"])
            for e in entries
            if e["kind"] in SUMMARY_KINDS
        )
        expected = _expected_summaries(moves, number, items)
        assert summaries == expected, f"{move['kind']} {number}: summaries {summaries}, expected {expected}"
        if move["kind"] != "revert":
            sources = {i["from_incident_id"] for i in items}
            assert sources <= set(move["source_incident_ids"]), f"{move['kind']} {number}: items from a non-source"

    last: dict[int, set[str]] = {}
    for entry in log:
        if entry["kind"] in STATUS_AFTER:
            last[entry["incident_id"]] = STATUS_AFTER[entry["kind"]]
    for number, incident in incidents.items():
        assert incident["status"] in last.get(number, {"active"}), (dict(incident), last.get(number))


def _redirected_by(moves, number: int) -> tuple[int, ...]:
    """The incidents a move redirects: a merge's sources, or theirs again when a revert redoes it."""
    move = moves[number]
    if move["kind"] == "merge":
        return tuple(move["source_incident_ids"])
    if move["kind"] == "revert":
        origin, depth = _origin(moves, move["reverts_move_id"])
        if origin["kind"] == "merge" and depth % 2 == 1:
            return tuple(origin["source_incident_ids"])
    return ()


def _check_incidents(alerts, incidents, moves, items, first) -> None:
    """Replays every move in order: each incident's stored fields are those of the alerts it holds
    (or, emptied, of those it last held), and no move left an alert in an incident it redirected."""
    where = dict(first)
    held: dict[int, set[int]] = defaultdict(set)
    for a, i in where.items():
        held[i].add(a)
    last_held = {i: set(a) for i, a in held.items()}
    by_move: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for item in items:
        by_move[item["move_id"]].append(item)
    for number in sorted(moves):
        for item in by_move[number]:
            held[item["from_incident_id"]].discard(item["alert_id"])
            held[item["to_incident_id"]].add(item["alert_id"])
            where[item["alert_id"]] = item["to_incident_id"]
        for item in by_move[number]:
            for i in (item["from_incident_id"], item["to_incident_id"]):
                if held[i]:
                    last_held[i] = set(held[i])
        for source in _redirected_by(moves, number):
            assert not held[source], (
                f"{moves[number]['kind']} {number} redirected {source}, which still holds alerts {sorted(held[source])}"
            )
    assert where == {a: r["incident_id"] for a, r in alerts.items()}

    for number, incident in incidents.items():
        now = {a for a, r in alerts.items() if r["incident_id"] == number}
        assert incident["alert_count"] == len(now), dict(incident)
        basis = now or last_held.get(number, set())
        assert basis, f"incident {number} never held an alert"
        expected = (
            max((alerts[a]["severity"] for a in basis), key=SEVERITIES.index),
            max(alerts[a]["detected_at"] for a in basis),
            sorted({alerts[a]["scope"] for a in basis}),
        )
        stored = (incident["severity"], incident["last_activity_at"], list(incident["alert_scopes"]))
        assert stored == expected, f"incident {number} ({'holds' if now else 'emptied; held'} {sorted(basis)})"
        if now:
            assert incident["status"] == "active", dict(incident)
        else:
            assert incident["status"] in ("resolved", "redirected"), dict(incident)


async def _check_redirects(pool: asyncpg.Pool) -> None:
    """A redirected incident holds no alert, and following redirects ends, within the number of
    incidents, at one that is not redirected."""
    rows = await pool.fetch(
        "SELECT i.id, i.alert_count, r.id AS to_id, r.status::text AS to_status,"
        " (SELECT count(*) FROM alerts a WHERE a.incident_id = i.id) AS holds"
        " FROM incidents i LEFT JOIN incidents r ON r.id = i.redirect_incident_id WHERE i.status = 'redirected'"
    )
    assert [dict(r) for r in rows if r["holds"] or r["alert_count"] or r["to_id"] is None] == []
    redirect = {r["id"]: r["to_id"] for r in rows}
    incidents = await pool.fetchval("SELECT count(*) FROM incidents")
    for start in redirect:
        at, steps = start, 0
        while at in redirect and steps <= incidents:
            at, steps = redirect[at], steps + 1
        assert at not in redirect, f"following redirects from {start} does not end within {incidents} incidents"


async def _check_history_api(server: Server, token: str, pool: asyncpg.Pool, first: dict[int, int]) -> None:
    """Alert.history, as a client reads it, tells the same story: ingestion's incident first, then
    each move's, the last where the alert is."""
    items = await pool.fetch("SELECT move_id, alert_id, to_incident_id FROM move_items ORDER BY alert_id, move_id")
    expected: dict[str, list[tuple[str, str | None]]] = {alert_id(a): [(inc(i), None)] for a, i in first.items()}
    for item in items:
        expected[alert_id(item["alert_id"])].append(
            (inc(item["to_incident_id"]), ids.typed_id(ids.MOVE, item["move_id"]))
        )
    wanted = sorted(expected)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, trust_env=False) as http:
        for start in range(0, len(wanted), 100):
            response = await http.post(
                f"{server.url}/graphql",
                json={"query": HISTORY, "variables": {"ids": wanted[start : start + 100]}},
                headers={"Authorization": f"Bearer {token}"},
            )
            body = response.json()
            assert "errors" not in body, body
            for node in body["data"]["nodes"]:
                told = [(p["incident"]["id"], p["move"] and p["move"]["id"]) for p in node["history"]]
                assert told == expected[node["id"]], node
                assert told[-1][0] == node["incident"]["id"], node
