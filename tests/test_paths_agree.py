"""Both execution paths give the same bytes, over documents generated from the whole schema.

The lean path (app/api/lean/) must answer exactly as graphql-core does through strawberry
(Settings.lean_path=False sends everything there). hypothesis-graphql generates query and
mutation documents over schema.graphql; this module reshapes some of them the way clients
write documents (arguments lifted into variables, aliases, repeated fields, `__typename`,
inline fragments and named fragments) and fills their arguments with values that hit real
data: the ids of the incidents, alerts and log entries of a small dataset, cursors taken from
earlier responses, words of the incidents' names, small page sizes, and some nonsense. Every
document is posted to both apps as the same viewer, and the two responses must agree in status,
content type and body, byte for byte.

Only values that are per request by nature are taken out of the bodies before comparing:
- the request id of an infrastructure or unexpected error (`extensions.requestId`, and the
  `(request id …)` in the message of INTERNAL_SERVER_ERROR);
- in mutation responses only, a timestamp that the request itself wrote: a DateTime that was not
  in the database before and lies between the database clock's readings just before and just
  after the request (rows the mutation created get `created_at = now()`, and an alert ingested
  without `detectedAt` gets now() there, which differ between the two runs), and a cursor whose
  key holds such a timestamp.
An app that raises instead of answering fails the test too, on either path.

Mutations run on each path from the same state: the dataset is snapshotted (COPY, with the
sequences) and restored before each run, so both paths see the same rows and hand out the same
new ids. Nothing is mocked; the lean path's `execute` is wrapped only to count what it answered.

Deterministic by default (derandomize): PATHS_AGREE_EXAMPLES query documents (150; each asked
as all four viewers) and half as many mutations (each as one drawn viewer). Locally, more and
other documents:
    PATHS_AGREE_EXAMPLES=1000 PATHS_AGREE_SEED=7 .venv/bin/python -m pytest tests/test_paths_agree.py
PATHS_AGREE_FAIL_FAST=1 stops at the first difference and lets hypothesis shrink the document;
otherwise every difference found is listed when the test fails. Documents that such runs found
the paths to disagree on are kept in `_found` and asked first in every run.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import os
import re
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import graphql
import httpx
import hypothesis_graphql as hg
import orjson
import pytest
from graphql import (
    ArgumentNode,
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NamedTypeNode,
    NameNode,
    ObjectFieldNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableDefinitionNode,
    VariableNode,
)
from hypothesis import HealthCheck, given, seed
from hypothesis import example as hypothesis_example
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.api import background
from app.api.lean import LeanPath
from app.config import ROOT, Settings
from app.domain import ingestion, users
from app.domain.viewers import Viewer
from app.server import create_app
from tests.conftest import TABLES, alert_id, alert_in, inc, log_id, number_of

QUERY_EXAMPLES = int(os.environ.get("PATHS_AGREE_EXAMPLES", "150"))
MUTATION_EXAMPLES = max(1, QUERY_EXAMPLES // 2)
SEED = os.environ.get("PATHS_AGREE_SEED")  # unset: derandomized, the same documents every run
FAIL_FAST = os.environ.get("PATHS_AGREE_FAIL_FAST") == "1"

SCHEMA = graphql.build_schema((ROOT / "schema.graphql").read_text())
DATA_TABLES = [t.strip() for t in TABLES.split(",")]  # the tables conftest empties between tests


# --- the dataset, the viewers, the two apps ---------------------------------------------------


@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    pool: asyncpg.Pool
    lean: httpx.AsyncClient
    normal: httpx.AsyncClient
    tokens: dict[str, str]
    incident_ids: list[str]
    alert_ids: list[str]
    entry_ids: list[str]
    cursors: list[str]
    words: list[str]
    external_ids: list[str]
    snapshot: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    sequences: list[tuple[str, int, bool]] = field(default_factory=list)
    known_moments: set[datetime] = field(default_factory=set)
    counts: tuple = ()
    redirect: tuple[str, str, str] = ("", "", "")  # a redirected incident, its target, an alert there
    dirty: bool = False
    lean_answers: list[bool] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


VIEWERS = {
    # name: (grants, may view the queue, may ingest)
    "admin": (["*=write"], True, True),
    "analyst": (["default=write", "hr=read"], True, False),
    "reader": (["default=read"], True, False),
    "noqueue": (["*=write"], False, False),
}

LINK = """
mutation($ids: [ID!]!, $target: LinkTarget!, $comment: String!, $key: String) {
  linkAlerts(alertIds: $ids, target: $target, comment: $comment, idempotencyKey: $key) {
    targetIncident { id } errors { code message }
  }
}
"""
INGEST = """
mutation($alerts: [AlertInput!]!) { ingestAlerts(alerts: $alerts) { alerts { id } errors { code message } } }
"""
PAGES = """
query($first: Int, $after: String, $q: String) {
  incidents(first: $first, after: $after, filter: {search: $q}) {
    pageInfo { endCursor hasNextPage }
    edges { cursor node { id name
      alerts(first: 1) { edges { cursor } pageInfo { endCursor } }
      activityLog(first: 2) { edges { cursor node { id } } pageInfo { endCursor } } } }
  }
  alerts(first: 3, filter: {search: $q}) { edges { cursor node { id externalId title } } }
}
"""


async def _post(client: httpx.AsyncClient, token: str, query: str, variables: dict | None = None) -> httpx.Response:
    body = {"query": query, "variables": variables or {}}
    return await client.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})


async def _data(client: httpx.AsyncClient, token: str, query: str, **variables) -> dict:
    response = await _post(client, token, query, variables)
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


async def _build_dataset(pool: asyncpg.Pool, normal: httpx.AsyncClient, tokens: dict[str, str]) -> tuple[str, str, str]:
    """Incidents with alerts in two scopes (some in both), correlated, moved, resolved,
    reopened, created by a move, and one redirected. Returns the redirected incident, the one it
    points to, and an alert of that one."""
    source = Viewer(id=0, name="source", can_view_incidents=True, can_ingest=True, grants={"*": "write"})
    batch = [
        alert_in(
            "d1",
            "Lateral movement on WS-1",
            severity="high",
            category="LateralMovement",
            entities=[("device", "WS-1"), ("user", "alice.smith@contoso.com")],
        ),
        alert_in(
            "d2",
            "Beacon from ws-1 to 203.0.113.9",
            minutes=5,
            category="CommandAndControl",
            entities=[("device", "ws-1"), ("ip", "203.0.113.9")],
        ),
        alert_in(
            "d3",
            "Phishing email to alice.smith@contoso.com",
            severity="low",
            minutes=10,
            category="InitialAccess",
            entities=[("mailbox", "alice.smith@contoso.com")],
        ),
        alert_in(
            "h1",
            "Payroll export on WS-1",
            scope="hr",
            minutes=12,
            category="Exfiltration",
            entities=[("device", "WS-1")],
        ),
        alert_in(
            "d4", "PowerShell download cradle on WS-2", severity="high", minutes=20, entities=[("device", "WS-2")]
        ),
        alert_in(
            "d5",
            "Credential dumping on WS-2",
            severity="high",
            minutes=25,
            category="CredentialAccess",
            entities=[("device", "ws-2"), ("user", "bob")],
        ),
        alert_in(
            "d6",
            "Port scan from 10.0.0.7",
            severity="informational",
            minutes=30,
            category="Discovery",
            entities=[("ip", "10.0.0.7")],
        ),
        alert_in(
            "h2",
            "HR share accessed from WS-3",
            scope="hr",
            severity="low",
            minutes=35,
            category="Collection",
            entities=[("device", "WS-3")],
        ),
        alert_in(
            "d7",
            "Suspicious login for carol",
            severity="low",
            minutes=40,
            category="InitialAccess",
            entities=[("user", "carol")],
        ),
        alert_in(
            "h3",
            "Salary file downloaded",
            scope="hr",
            severity="high",
            minutes=45,
            category="Exfiltration",
            entities=[("file", "salaries.xlsx")],
        ),
        alert_in(
            "d8",
            "Ransomware note on FS-1",
            severity="high",
            minutes=50,
            category="Impact",
            entities=[("device", "FS-1")],
        ),
        alert_in(
            "d9",
            "Mailbox rule created for dave@contoso.com",
            minutes=55,
            category="Persistence",
            entities=[("mailbox", "dave@contoso.com")],
        ),
    ]
    async with pool.acquire() as conn, conn.transaction():
        await ingestion.ingest_alerts(conn=conn, viewer=source, batch=batch, correlation=ingestion.Correlation())
    # A second source's batch through the API.
    await _data(
        normal,
        tokens["admin"],
        INGEST,
        alerts=[
            {
                "externalId": "d10",
                "title": "Beacon from WS-2 % 100_ \\ done",
                "severity": "MEDIUM",
                "category": "CommandAndControl",
                "detectedAt": "2026-11-20T13:05:00Z",
                "entities": [{"kind": "DEVICE", "value": "ws-2"}],
            },
            {
                "externalId": "h4",
                "title": "Badge reader offline",
                "severity": "INFORMATIONAL",
                "category": "Other",
                "scope": "hr",
                "detectedAt": "2026-11-20T13:10:00Z",
                "entities": [{"kind": "URL", "value": "http://badge"}],
            },
        ],
    )
    by_external = {
        r["external_id"]: (alert_id(r["id"]), inc(r["incident_id"]))
        for r in await pool.fetch("SELECT id, external_id, incident_id FROM alerts")
    }

    def alert(x: str) -> str:
        return by_external[x][0]

    def incident(x: str) -> str:
        return by_external[x][1]

    admin = tokens["admin"]
    d3_home, d7_home, d9_home = incident("d3"), incident("d7"), incident("d9")
    moves = [
        # Into an existing incident: its old one is left empty, RESOLVED.
        {"ids": [alert("d3")], "target": {"existingIncidentId": incident("d1")}, "comment": "same user, same day"},
        # Two alerts into a new incident named after them, with an idempotency key.
        {
            "ids": [alert("d7"), alert("d9")],
            "target": {"createNew": True},
            "comment": "account takeover",
            "key": "ticket-1",
        },
        # Into a RESOLVED incident: reopened.
        {"ids": [alert("d6")], "target": {"existingIncidentId": d7_home}, "comment": "scan before the login"},
        # An hr alert into a default incident: an incident with alerts in both scopes.
        {"ids": [alert("h2")], "target": {"existingIncidentId": incident("d4")}, "comment": "WS-3 is next to WS-2"},
        # And a move back, so one incident has both LINKED and UNLINKED entries.
        {"ids": [alert("d2")], "target": {"existingIncidentId": incident("d8")}, "comment": "wrong story"},
        {"ids": [alert("d2")], "target": {"existingIncidentId": incident("d1")}, "comment": "right story after all"},
    ]
    for move in moves:
        result = (await _data(normal, admin, LINK, **move))["linkAlerts"]
        assert result["errors"] == [], result
    # The domain has no operation that redirects an incident (tests/test_link_alerts.py does it
    # in SQL too): d3's old incident, RESOLVED by the first move, merged into d1's.
    await pool.execute(
        "UPDATE incidents SET status = 'redirected', redirect_incident_id = $2 WHERE id = $1",
        number_of(d3_home),
        number_of(incident("d1")),
    )
    statuses = {r["status"] for r in await pool.fetch("SELECT status::text FROM incidents")}
    assert {"active", "resolved", "redirected"} <= statuses, statuses
    assert d9_home  # RESOLVED by the second move and left so
    return d3_home, incident("d1"), alert("d1")


async def _collect(world: World) -> None:
    """Ids, cursors and words from the data, as the viewers see it."""
    pool = world.pool
    world.incident_ids = [inc(r["id"]) for r in await pool.fetch("SELECT id FROM incidents ORDER BY id")]
    world.alert_ids = [alert_id(r["id"]) for r in await pool.fetch("SELECT id FROM alerts ORDER BY id")]
    world.entry_ids = [log_id(r["id"]) for r in await pool.fetch("SELECT id FROM activity_log ORDER BY id")]
    world.external_ids = [r["external_id"] for r in await pool.fetch("SELECT external_id FROM alerts ORDER BY id")]
    cursors: list[str] = []

    def take(value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("cursor", "endCursor") and isinstance(item, str):
                    cursors.append(item)
                else:
                    take(item)
        elif isinstance(value, list):
            for item in value:
                take(item)

    for name in ("admin", "reader"):
        for q in (None, "on", "ws-1"):
            after = None
            for _ in range(3):  # the first pages of the queue, and what each page holds
                data = await _data(world.normal, world.tokens[name], PAGES, first=2, after=after, q=q)
                take(data)
                after = data["incidents"]["pageInfo"]["endCursor"]
                if not data["incidents"]["pageInfo"]["hasNextPage"]:
                    break
    world.cursors = sorted(set(cursors))
    assert len(world.cursors) >= 10, world.cursors
    world.words = [
        "on",
        "ws-1",
        "WS-2 powershell",
        "lat mov",
        "alice.smith@contoso.com",
        "smith",
        "beacon",
        "multiple",
        "account",
        "% 100_",
        "\\",
        "'",
        "zzz",
        "a b c d e f g h i",
        "x" * 201,
        "",
        "  ",
        *(f"#{i}" for i in world.incident_ids[:3]),
        *world.incident_ids[:3],
    ]


async def _dependency_order(conn: asyncpg.Connection, tables: list[str]) -> list[str]:
    """The tables, each after those its foreign keys point to (each COPY checks them)."""
    rows = await conn.fetch(
        "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent FROM pg_constraint"
        " WHERE contype = 'f' AND conrelid <> confrelid"
    )
    # References checked by statement triggers, not foreign keys (db/migrations/0014 and 0022).
    checked = {
        "move_items": ("moves", "alerts", "incidents"),
        "activity_log": ("incidents", "alerts", "moves"),
        "move_incidents": ("incidents", "moves"),
        "alert_entities": ("alerts",),
        "alerts": ("incidents",),
    }
    rows = [*rows, *({"child": child, "parent": p} for child, parents in checked.items() for p in parents)]
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = [
            t
            for t in tables
            if t not in ordered
            and all(r["parent"] in ordered or r["parent"] not in tables for r in rows if r["child"] == t)
        ]
        assert ready, f"foreign keys in a cycle among {tables}"
        ordered += ready
    return ordered


async def _snapshot(world: World) -> None:
    async with world.pool.acquire() as conn:
        for table in await _dependency_order(conn, DATA_TABLES):
            columns = [
                r["column_name"]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
                    " AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position",
                    table,
                )
            ]
            out = io.BytesIO()
            await conn.copy_from_table(table, columns=columns, output=out, format="binary")
            world.snapshot.append((table, columns, out.getvalue()))
        for row in await conn.fetch("SELECT schemaname, sequencename FROM pg_sequences WHERE schemaname = 'public'"):
            name = f'"{row["schemaname"]}"."{row["sequencename"]}"'
            state = await conn.fetchrow(f"SELECT last_value, is_called FROM {name}")
            world.sequences.append((name, state["last_value"], state["is_called"]))
        for table, columns in (
            ("incidents", ("created_at", "last_activity_at")),
            ("alerts", ("created_at", "detected_at")),
            ("alert_entities", ("detected_at",)),
            ("activity_log", ("created_at",)),
            ("idempotency_keys", ("created_at",)),
        ):
            for column in columns:
                world.known_moments.update(r[0] for r in await conn.fetch(f"SELECT DISTINCT {column} FROM {table}"))
        world.counts = tuple(await conn.fetchrow(COUNTS))


COUNTS = (
    "SELECT (SELECT count(*) FROM activity_log), (SELECT count(*) FROM alerts), (SELECT count(*) FROM idempotency_keys)"
)


async def _restore(world: World) -> None:
    """The database exactly as the snapshot left it, new ids included."""
    await background.finish()  # a merge of pending index entries, started by an ingestion
    async with world.pool.acquire() as conn, conn.transaction():
        await conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)}")
        # Each table as it was, the derived ones too: no trigger derives them again from the rows
        # copied (alert_titles from alerts, incident_evidence from alert_entities).
        await conn.execute("SET LOCAL session_replication_role = replica")
        for table, columns, data in world.snapshot:
            await conn.copy_to_table(table, columns=columns, source=io.BytesIO(data), format="binary")
        for name, last_value, is_called in world.sequences:
            await conn.execute("SELECT setval($1::regclass, $2, $3)", name, last_value, is_called)
    world.dirty = False


@pytest.fixture
async def clean():
    """Overrides conftest's: this module sets its data up once (`world`), and other modules'
    tests empty the tables again before they run."""
    yield


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, settings: Settings):
    await pool.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    tokens = {}
    async with pool.acquire() as conn:
        for name, (grants, queue, ingest) in VIEWERS.items():
            tokens[name] = await users.add_user(
                conn=conn,
                name=name,
                grants=[users.parse_grant(g) for g in grants],
                can_view_incidents=queue,
                can_ingest=ingest,
            )
    lean_app = create_app(Settings(**{**settings.__dict__, "lean_path": True}), pool=pool)
    normal_app = create_app(Settings(**{**settings.__dict__, "lean_path": False}), pool=pool)
    answers: list[bool] = []
    execute = LeanPath.execute

    async def recording(self, *args, **kwargs):
        answer = await execute(self, *args, **kwargs)
        answers.append(answer is not None)
        return answer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LeanPath, "execute", recording)  # records only: which path answered
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=lean_app), base_url="http://test") as lean,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=normal_app), base_url="http://test") as normal,
        ):
            redirect = await _build_dataset(pool, normal, tokens)
            w = World(
                loop=asyncio.get_running_loop(),
                pool=pool,
                lean=lean,
                normal=normal,
                tokens=tokens,
                incident_ids=[],
                alert_ids=[],
                entry_ids=[],
                cursors=[],
                words=[],
                external_ids=[],
                lean_answers=answers,
                redirect=redirect,
            )
            await _collect(w)
            await _snapshot(w)
            yield w
            await background.finish()


# --- generated documents ----------------------------------------------------------------------


def _scalars(world: World) -> dict[str, st.SearchStrategy]:
    """Values for every scalar argument: mostly ones that mean something in the dataset."""

    def string(values) -> st.SearchStrategy:
        return st.sampled_from(values).map(lambda v: StringValueNode(value=v))

    ids = world.incident_ids + world.alert_ids
    # Numbers as people type them: no ids (incident(number:) takes those, as an Int).
    numbers = [str(number_of(i)) for i in world.incident_ids]
    junk_ids = [
        *["inc_0", "inc_999999", "alert_999999", "log_999999", "inc_9223372036854775808", "alert_" + "1" * 19],
        *["0", "999999", "-1", "abc", "", " inc_1", "inc_1 ", "inc_1.5", "inc_", "#", "INC_1", "inc_01", "alert_١"],
    ]
    return {
        "ID": st.one_of(
            string(ids),
            string(ids),
            string(world.entry_ids),
            string(numbers + [f"#{n}" for n in numbers]),
            string(junk_ids),
            st.sampled_from(numbers).map(lambda v: IntValueNode(value=v)),
        ),
        "String": st.one_of(
            string(world.cursors),
            string(world.cursors),
            string(world.words),
            string([*world.external_ids, "default", "hr", "Execution", "same actor"]),
            st.text(min_size=1, max_size=12).map(lambda v: StringValueNode(value=v)),
        ),
        "Int": st.one_of(
            st.integers(1, 5),
            st.integers(1, 5),
            st.integers(1, 5),
            st.sampled_from([0, 6, 100, 101, -1, 2**31 - 1]),
        ).map(lambda i: IntValueNode(value=str(i))),
        "DateTime": string(
            [
                "2026-11-20T12:00:00Z",
                "2026-11-20T12:30:00+00:00",
                "2026-11-20T14:00:00+02:00",
                "2026-11-20T12:00:00",
                "2026-11-21T09:00:00.123456Z",
                "2026-11-20T11:59:59.5-05:00",
                "2026-11-19T23:00:00Z",
                "2026-11-20T13:10:00Z",
                "2026-11-20T12:05:00Z",
                "2026-11-20T12:45:00Z",
                "2126-01-01T00:00:00Z",
                "1999-01-01T00:00:00Z",
                "yesterday",
                "",  # refused
            ]
        ),
    }


def _lift_type(location_type: graphql.GraphQLInputType, one_of_field: bool) -> graphql.TypeNode:
    text = str(location_type)
    if one_of_field and not text.endswith("!"):
        text += "!"  # a variable in a @oneOf field must be non-null
    return graphql.parse_type(text)


class _Shaper:
    """Rewrites a generated document the ways clients write them, drawing each choice."""

    def __init__(self, draw, world: World) -> None:
        self.draw = draw
        self.world = world
        self.definitions: list[VariableDefinitionNode] = []
        self.variables: dict[str, object] = {}
        self.fragments: list[FragmentDefinitionNode] = []
        self.names = 0

    def chance(self, one_in: int) -> bool:
        return self.draw(st.integers(0, one_in - 1)) == 0

    def name(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    def document(self, document: DocumentNode) -> DocumentNode:
        (operation,) = document.definitions
        root = SCHEMA.get_root_type(operation.operation)
        selection_set = self.selection_set(operation.selection_set, root)
        name = NameNode(value="Generated") if self.chance(3) else None
        shaped = OperationDefinitionNode(
            operation=operation.operation,
            name=name,
            variable_definitions=tuple(self.definitions),
            directives=(),
            selection_set=selection_set,
        )
        return DocumentNode(definitions=(shaped, *self.fragments))

    def selection_set(self, selection_set: SelectionSetNode, parent: graphql.GraphQLObjectType) -> SelectionSetNode:
        selections: list = []
        for node in selection_set.selections:
            if isinstance(node, InlineFragmentNode):  # hypothesis-graphql's, for each type of an interface
                on = SCHEMA.get_type(node.type_condition.name.value)
                shaped = self.selection_set(node.selection_set, on)
                selections.append(
                    InlineFragmentNode(type_condition=node.type_condition, directives=(), selection_set=shaped)
                )
                continue
            definition = parent.fields[node.name.value]
            selections.append(self.field(node, definition, parent))
            if self.chance(12):  # the same field again: under another key, or merged under the same
                if self.chance(2):
                    again = _with_alias(self.field(node, definition, parent), self.name("again"))
                else:  # the same key and arguments, a selection of its own
                    first = selections[-1]
                    sub = node.selection_set and self.selection_set(
                        node.selection_set, graphql.get_named_type(definition.type)
                    )
                    again = FieldNode(
                        alias=first.alias, name=node.name, arguments=first.arguments, directives=(), selection_set=sub
                    )
                selections.append(again)
        if self.chance(8):
            selections.insert(self.draw(st.integers(0, len(selections))), FieldNode(name=NameNode(value="__typename")))
        kind = self.draw(st.sampled_from(["plain"] * 8 + ["inline", "spread"]))
        if kind == "inline":
            on = NamedTypeNode(name=NameNode(value=parent.name)) if self.chance(2) else None
            selections = [
                InlineFragmentNode(
                    type_condition=on, directives=(), selection_set=SelectionSetNode(selections=tuple(selections))
                )
            ]
        elif kind == "spread":
            name = self.name("Part")
            self.fragments.append(
                FragmentDefinitionNode(
                    name=NameNode(value=name),
                    type_condition=NamedTypeNode(name=NameNode(value=parent.name)),
                    directives=(),
                    selection_set=SelectionSetNode(selections=tuple(selections)),
                )
            )
            selections = [FragmentSpreadNode(name=NameNode(value=name), directives=())]
        return SelectionSetNode(selections=tuple(selections))

    def field(self, node: FieldNode, definition: graphql.GraphQLField, parent) -> FieldNode:
        arguments = []
        for argument in node.arguments:
            arg_def = definition.args[argument.name.value]
            value = argument.value
            if parent.name == "Mutation" and argument.name.value == "target":
                value = self.one_target(value)
            if argument.name.value == "after" and self.chance(2):
                value = graphql.NullValueNode()  # a first page, as most requests ask
            if parent.name == "Mutation" and argument.name.value == "alertIds" and self.chance(2):
                # Often a few alerts that exist, so that moves are made, not only refused.
                picked = self.draw(st.lists(st.sampled_from(self.world.alert_ids), min_size=1, max_size=3))
                value = ListValueNode(values=tuple(StringValueNode(value=a) for a in picked))
            arguments.append(ArgumentNode(name=argument.name, value=self.value(value, arg_def.type, False)))
        sub = None
        if node.selection_set is not None:
            sub = self.selection_set(node.selection_set, graphql.get_named_type(definition.type))
        alias = NameNode(value=self.name("k")) if self.chance(6) else None
        return FieldNode(alias=alias, name=node.name, arguments=tuple(arguments), directives=(), selection_set=sub)

    def one_target(self, value):
        """hypothesis-graphql does not know @oneOf: most targets get exactly one key."""
        if self.chance(10):
            return value
        if self.chance(2):
            incident = self.draw(
                st.sampled_from([*self.world.incident_ids, "inc_999999", "999999", "abc", self.world.alert_ids[0]])
            )
            return ObjectValueNode(
                fields=(
                    ObjectFieldNode(name=NameNode(value="existingIncidentId"), value=StringValueNode(value=incident)),
                )
            )
        return ObjectValueNode(
            fields=(
                ObjectFieldNode(name=NameNode(value="createNew"), value=BooleanValueNode(value=not self.chance(10))),
            )
        )

    def value(self, node, location_type: graphql.GraphQLInputType, one_of_field: bool):
        """The literal, or parts of it, as variables."""
        if not isinstance(node, VariableNode) and self.chance(3):
            name = self.name("v")
            self.definitions.append(
                VariableDefinitionNode(
                    variable=VariableNode(name=NameNode(value=name)),
                    type=_lift_type(location_type, one_of_field),
                    directives=(),
                )
            )
            self.variables[name] = graphql.value_from_ast_untyped(node)
            return VariableNode(name=NameNode(value=name))
        named = graphql.get_nullable_type(location_type)
        if isinstance(node, ObjectValueNode) and isinstance(named, graphql.GraphQLInputObjectType):
            return ObjectValueNode(
                fields=tuple(
                    ObjectFieldNode(
                        name=f.name, value=self.value(f.value, named.fields[f.name.value].type, named.is_one_of)
                    )
                    for f in node.fields
                )
            )
        if isinstance(node, ListValueNode) and isinstance(named, graphql.GraphQLList):
            return ListValueNode(values=tuple(self.value(v, named.of_type, False) for v in node.values))
        return node


def _with_alias(node: FieldNode, alias: str) -> FieldNode:
    return FieldNode(
        alias=NameNode(value=alias),
        name=node.name,
        arguments=node.arguments,
        directives=(),
        selection_set=node.selection_set,
    )


@dataclass(frozen=True)
class Case:
    query: str
    variables: dict

    def __repr__(self) -> str:  # hypothesis prints this for a falsifying example
        return f"Case(variables={self.variables!r}, query=\n{self.query})"


def _cases(world: World, kind: str) -> st.SearchStrategy[Case]:
    scalars = _scalars(world)
    if kind == "query":
        # The whole Query type, and more often the roots the lean path takes (not `viewer`).
        generated = st.one_of(
            *(
                hg.queries(SCHEMA, fields=roots, custom_scalars=scalars, print_ast=lambda d: d)
                for roots in (
                    None,
                    ["incidents", "incident"],
                    ["alerts", "alert"],
                    ["incidents", "alerts", "incident", "alert"],
                    ["node", "nodes", "incident", "alert"],  # typed ids of every kind, fragments on Node
                )
            )
        )
    else:
        generated = st.one_of(
            hg.mutations(SCHEMA, fields=["linkAlerts"], custom_scalars=scalars, print_ast=lambda d: d),
            hg.mutations(SCHEMA, fields=["linkAlerts"], custom_scalars=scalars, print_ast=lambda d: d),
            hg.mutations(SCHEMA, fields=["ingestAlerts"], custom_scalars=scalars, print_ast=lambda d: d),
            hg.mutations(SCHEMA, custom_scalars=scalars, print_ast=lambda d: d),
        )

    @st.composite
    def cases(draw) -> Case:
        shaper = _Shaper(draw, world)
        document = shaper.document(draw(generated))
        return Case(graphql.print_ast(document), shaper.variables)

    return cases()


# --- comparing --------------------------------------------------------------------------------

REQUEST_ID = re.compile(rb'"requestId":"[0-9a-f]{16}"')
REQUEST_ID_IN_MESSAGE = re.compile(rb"\(request id [0-9a-f]{16}\)")
MOMENT = re.compile(rb'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?\+00:00)"')
CURSOR = re.compile(rb'"([A-Za-z0-9_-]{12,})"')


def _per_request_removed(body: bytes, world: World, written: tuple[datetime, datetime] | None) -> bytes:
    body = REQUEST_ID.sub(b'"requestId":"<request id>"', body)
    body = REQUEST_ID_IN_MESSAGE.sub(b"(request id <request id>)", body)
    if written is None:
        return body
    start, end = written

    def of_this_request(text: str) -> bool:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return False
        return moment.tzinfo is not None and start <= moment <= end and moment not in world.known_moments

    def moment(match: re.Match) -> bytes:
        return b'"<now() of this request>"' if of_this_request(match.group(1).decode()) else match.group(0)

    def cursor(match: re.Match) -> bytes:
        # A cursor is base64 of a JSON list: ["kind", key...]; an alert's key holds its detectedAt,
        # which is now() for an alert ingested without one.
        raw = match.group(1)
        try:
            parts = orjson.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
        except (ValueError, binascii.Error, orjson.JSONDecodeError):
            return match.group(0)
        if isinstance(parts, list) and any(isinstance(p, str) and of_this_request(p) for p in parts[1:]):
            return b'"<a cursor holding now() of this request>"'
        return match.group(0)

    return CURSOR.sub(cursor, MOMENT.sub(moment, body))


@dataclass
class Difference:
    viewer: str
    case: Case
    lean: tuple
    normal: tuple
    what: str = "the paths answered differently"
    lean_answered: bool = False  # the lean path answered itself, rather than leave it to graphql-core

    def __str__(self) -> str:
        by = "the lean path" if self.lean_answered else "graphql-core (the lean path left it)"
        return (
            f"--- {self.what}: viewer {self.viewer}, variables {orjson.dumps(self.case.variables).decode()[:300]}\n"
            f"{self.case.query}\n  lean app, answered by {by}: {_abbreviated(self.lean)}\n"
            f"  normal app: {_abbreviated(self.normal)}"
        )


def _abbreviated(answer: tuple, width: int = 700) -> str:
    status, media_type, body = answer
    text = body.decode(errors="replace")
    return f"{status} {media_type} {text if len(text) <= width else text[:width] + f'... ({len(text)} chars)'}"


async def _ask(world: World, client: httpx.AsyncClient, viewer: str, case: Case, mutation: bool) -> tuple:
    if mutation and world.dirty:
        await _restore(world)
    written = None
    if mutation:
        start = await world.pool.fetchval("SELECT clock_timestamp()")
    try:
        response = await _post(client, world.tokens[viewer], case.query, case.variables)
    except (Exception, asyncio.CancelledError) as exc:  # the app raised instead of answering
        if asyncio.current_task().cancelling():
            raise
        response = None
        answer = ("raised", type(exc).__name__, str(exc)[:300].encode())
    if mutation:
        await background.finish()
        written = (start, await world.pool.fetchval("SELECT clock_timestamp()"))
        world.dirty = True
        if client is world.normal and tuple(await world.pool.fetchrow(COUNTS)) != world.counts:
            world.stats["mutations that changed the data"] = world.stats.get("mutations that changed the data", 0) + 1
    if response is None:
        return answer
    return (
        response.status_code,
        response.headers.get("content-type"),
        _per_request_removed(response.content, world, written),
    )


async def _compare(world: World, viewer: str, case: Case, mutation: bool, differences: list[Difference]) -> None:
    if not mutation and world.dirty:
        await _restore(world)
    before = len(world.lean_answers)
    lean = await _ask(world, world.lean, viewer, case, mutation)
    answered = world.lean_answers[before:] == [True]
    normal = await _ask(world, world.normal, viewer, case, mutation)
    world.stats["requests"] = world.stats.get("requests", 0) + 1
    world.stats["lean answered"] = world.stats.get("lean answered", 0) + answered
    if lean == normal and lean[0] == "raised":  # the same, but no answer at all: a failure too
        crash = Difference(viewer, case, lean, normal, "the app raised on both paths instead of answering", answered)
        if FAIL_FAST:
            raise AssertionError(str(crash))
        differences.append(crash)
    if lean != normal:
        difference = Difference(viewer, case, lean, normal, lean_answered=answered)
        if FAIL_FAST:
            raise AssertionError(f"the paths disagree:\n{difference}")
        differences.append(difference)


def _found(world: World, kind: str) -> list[Case]:
    """Documents that generated runs found the paths to answer differently (shrunk by hand),
    fixed since (29e6197): every run asks them first, before the generated ones."""
    if kind == "mutation":
        return []
    redirected, target, alert = world.redirect
    return [
        # Two sibling non-null fields that both fail: the lean app (graphql-core after the lean
        # path's attempt) reported `alerts`' error, the normal app `log`'s.
        Case(
            f'{{ incident(id: "{target}") {{ alerts(first: -1) {{ totalCount }}'
            ' log: activityLog(first: 1, after: "bad") { totalCount } } }',
            {},
        ),
        # A failing non-null field cancels its siblings, one of which awaits the incident loader's
        # future that `alert.incident` awaits too: CancelledError escaped the app (uvicorn: a
        # plain-text 500), most often on the normal app.
        Case(
            f'{{ k1: incident(id: "{redirected}") {{ redirectIncident {{ id }}'
            ' activityLog(first: 1, after: "bad") { totalCount } }'
            f' alert(id: "{alert}") {{ incident {{ id }} }} }}',
            {},
        ),
    ]


def _run(world: World, kind: str, examples: int) -> list[Difference]:
    differences: list[Difference] = []
    mutation = kind == "mutation"
    options = hypothesis_settings(
        max_examples=examples,
        derandomize=SEED is None,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )

    @options
    # Mutations as one drawn viewer, most often one who may move and ingest.
    @given(case=_cases(world, kind), viewer=st.sampled_from(["admin", "admin", "analyst", "reader", "noqueue"]))
    def example(case: Case, viewer: str) -> None:
        # Reads as every viewer, whose permissions shape the answer; a mutation as the one drawn
        # (each run of a mutation restores the data twice).
        viewers = [viewer] if mutation else sorted(VIEWERS)
        for name in viewers:
            world.loop.run_until_complete(_compare(world, name, case, mutation, differences))

    for case in _found(world, kind):
        example = hypothesis_example(case=case, viewer="admin")(example)
    if SEED is not None:
        example = seed(int(SEED))(example)
    example()
    if world.dirty:
        world.loop.run_until_complete(_restore(world))
    return differences


def _report(differences: list[Difference], world: World) -> str:
    lines = [
        f"{len(differences)} of {world.stats['requests']} requests failed: the paths answered differently, "
        f"or the app raised instead of answering (the lean path answered {world.stats['lean answered']} "
        "of them itself):"
    ]
    lines += [str(d) for d in differences[:25]]
    if len(differences) > 25:
        lines.append(f"... and {len(differences) - 25} more")
    return "\n".join(lines)


def test_generated_queries_get_the_same_bytes_on_both_paths(world: World):
    world.stats.clear()
    differences = _run(world, "query", QUERY_EXAMPLES)
    print(f"queries: {world.stats}")
    assert world.stats["lean answered"] > 0, "the lean path answered none of the generated queries"
    assert not differences, _report(differences, world)


def test_generated_mutations_get_the_same_bytes_on_both_paths(world: World):
    world.stats.clear()
    differences = _run(world, "mutation", MUTATION_EXAMPLES)
    print(f"mutations: {world.stats}")
    assert world.stats["lean answered"] > 0, "the lean path answered none of the generated mutations"
    assert not differences, _report(differences, world)
