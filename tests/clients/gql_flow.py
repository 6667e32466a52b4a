"""Python's gql (httpx transport) against a live server: the schema by introspection, then the move flow.

Usage: python -m tests.live -- .venv-clients/bin/python tests/clients/gql_flow.py

gql asks for the schema by introspection and validates every document against it before sending.
Its default introspection does not ask for `isOneOf`, so the schema it builds loses `@oneOf`;
`introspection_args={"input_object_one_of": True}` keeps it (docs/clients.md).
"""

from __future__ import annotations

import asyncio
import difflib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import GraphQLError, GraphQLSchema, build_schema, lexicographic_sort_schema, print_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
# Everything the schema can say: @oneOf (isOneOf), @specifiedBy, deprecated arguments and input fields.
INTROSPECTION_ARGS = {
    "input_object_one_of": True,
    "specified_by_url": True,
    "input_value_deprecation": True,
    "directive_is_repeatable": True,
    "schema_description": True,
}
RUN_ID = f"gql-{os.getpid()}-{int(time.time() * 1000)}"

INCIDENT_ROW = """
fragment IncidentRow on Incident { id number name status alertCount }
"""

QUEUE = (
    """
query Queue($first: Int, $after: String, $search: String) {
  incidents(filter: {search: $search}, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { ...IncidentRow } }
  }
}
"""
    + INCIDENT_ROW
)

QUEUE_BACKWARD = """
query QueueBackward($last: Int, $before: String) {
  incidents(last: $last, before: $before) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { id } }
  }
}
"""

INCIDENT = (
    """
query Incident($id: ID!) {
  incident(id: $id) {
    ...IncidentRow
    alerts(first: 50) { edges { node { id viewerCanLink } } }
  }
}
"""
    + INCIDENT_ROW
)

ACTIVITY_LOG_BACKWARD = """
query ActivityLogBackward($id: ID!, $last: Int, $before: String) {
  node(id: $id) {
    ... on Incident {
      activityLog(last: $last, before: $before) {
        pageInfo { hasPreviousPage startCursor }
        edges { node { id } }
      }
    }
  }
}
"""

ACTIVITY_LOG = """
query ActivityLog($id: ID!) {
  incident(id: $id) { activityLog(first: 100) { edges { node { id } } } }
}
"""

REFETCH = (
    """
query Refetch($id: ID!) {
  node(id: $id) { __typename id ... on Incident { ...IncidentRow } }
}
"""
    + INCIDENT_ROW
)

MOVE = (
    """
mutation MoveAlerts($alertIds: [ID!]!, $target: LinkTarget!, $comment: String!, $idempotencyKey: String) {
  linkAlerts(alertIds: $alertIds, target: $target, comment: $comment, idempotencyKey: $idempotencyKey) {
    targetIncident { ...IncidentRow }
    sourceIncidents { ...IncidentRow }
    alerts { id incident { id } }
    logEntries { id comment incident { id } }
    errors { code message field alertIds }
  }
}
"""
    + INCIDENT_ROW
)

BOTH_TARGETS = """
mutation MoveToBoth {
  linkAlerts(alertIds: ["alert_1"], target: {existingIncidentId: "inc_1", createNew: true}, comment: "x") {
    errors { code }
  }
}
"""


def transport() -> HTTPXAsyncTransport:
    return HTTPXAsyncTransport(
        url=os.environ["GRAPHQL_URL"], headers={"Authorization": f"Bearer {os.environ['GRAPHQL_TOKEN']}"}
    )


def printed(schema: GraphQLSchema) -> str:
    return print_schema(lexicographic_sort_schema(schema))


class Flow:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.state: dict[str, Any] = {}

    async def run(self, document: str, **variables: Any) -> dict[str, Any]:
        return await self.session.execute(GraphQLRequest(document, variable_values=variables))

    async def page_forward(self) -> list[dict[str, Any]]:
        incidents, after = [], None
        while True:
            page = (await self.run(QUEUE, first=8, after=after))["incidents"]
            assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
            incidents += [edge["node"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return incidents
            after = page["pageInfo"]["endCursor"]

    async def queue_forward(self) -> None:
        self.state["queue"] = await self.page_forward()
        assert len({i["id"] for i in self.state["queue"]}) == len(self.state["queue"])

    async def typeahead(self) -> None:
        active = [i for i in self.state["queue"] if i["status"] == "ACTIVE"]
        source = next(i for i in active if i["alertCount"] >= 2)
        target = next(i for i in active if i["id"] != source["id"])
        self.state.update(source=source, target=target)
        word = max(target["name"].split(), key=len)
        found = (await self.run(QUEUE, search=word, first=10))["incidents"]["edges"]
        assert target["id"] in [edge["node"]["id"] for edge in found], word

    async def open_and_refetch(self) -> None:
        incident = (await self.run(INCIDENT, id=self.state["source"]["id"]))["incident"]
        alerts = [edge["node"] for edge in incident["alerts"]["edges"]]
        assert all(alert["viewerCanLink"] for alert in alerts)
        self.state["alert_ids"] = [alert["id"] for alert in alerts]
        node = (await self.run(REFETCH, id=incident["id"]))["node"]
        assert node["__typename"] == "Incident"
        assert (node["id"], node["name"], node["alertCount"]) == (incident["id"], incident["name"], len(alerts))

    async def link_to_existing(self) -> None:
        source, target, alert_ids = self.state["source"], self.state["target"], self.state["alert_ids"]
        moved, comment = alert_ids[:-1], f"Same attacker ({RUN_ID})"
        variables = {
            "alertIds": moved,
            "target": {"existingIncidentId": target["id"]},
            "comment": comment,
            "idempotencyKey": f"{RUN_ID}-existing",
        }
        payload = (await self.run(MOVE, **variables))["linkAlerts"]
        assert payload["errors"] == [], payload["errors"]
        assert payload["targetIncident"]["id"] == target["id"]
        assert sorted(alert["id"] for alert in payload["alerts"]) == sorted(moved)
        assert all(alert["incident"]["id"] == target["id"] for alert in payload["alerts"])
        assert any(entry["comment"] == comment for entry in payload["logEntries"])
        assert [(i["id"], i["alertCount"]) for i in payload["sourceIncidents"]] == [(source["id"], 1)]
        replay = (await self.run(MOVE, **variables))["linkAlerts"]
        assert [e["id"] for e in replay["logEntries"]] == [e["id"] for e in payload["logEntries"]]

    async def link_to_new(self) -> None:
        source, target = self.state["source"], self.state["target"]
        last = self.state["alert_ids"][-1:]
        variables = {
            "alertIds": last,
            "target": {"createNew": True},
            "comment": f"Unrelated ({RUN_ID})",
            "idempotencyKey": f"{RUN_ID}-new",
        }
        payload = (await self.run(MOVE, **variables))["linkAlerts"]
        assert payload["errors"] == [], payload["errors"]
        created = payload["targetIncident"]
        assert created["id"] not in (source["id"], target["id"])
        assert [a["incident"]["id"] for a in payload["alerts"]] == [created["id"]]
        assert [(i["id"], i["status"]) for i in payload["sourceIncidents"]] == [(source["id"], "RESOLVED")]

    async def one_of_checked_before_sending(self) -> None:
        try:
            await self.run(BOTH_TARGETS)
        except GraphQLError as error:  # gql's own validation, against the introspected schema
            assert "LinkTarget" in str(error), error
        else:
            raise AssertionError("gql sent a LinkTarget with both keys: its schema lost @oneOf")

    async def queue_backward(self) -> None:
        forward = [i["id"] for i in await self.page_forward()]
        backward: list[str] = []
        before = None
        while True:
            page = (await self.run(QUEUE_BACKWARD, last=8, before=before))["incidents"]
            backward[:0] = [edge["node"]["id"] for edge in page["edges"]]
            if not page["pageInfo"]["hasPreviousPage"]:
                break
            before = page["pageInfo"]["startCursor"]
        assert backward == forward

    async def activity_log_backward(self) -> None:
        incident_id = self.state["target"]["id"]
        newest_first = (await self.run(ACTIVITY_LOG, id=incident_id))["incident"]["activityLog"]["edges"]
        entries: list[str] = []
        before = None
        while True:
            log = (await self.run(ACTIVITY_LOG_BACKWARD, id=incident_id, last=2, before=before))["node"]
            page = log["activityLog"]
            entries[:0] = [edge["node"]["id"] for edge in page["edges"]]
            if not page["pageInfo"]["hasPreviousPage"]:
                break
            before = page["pageInfo"]["startCursor"]
        assert entries == [edge["node"]["id"] for edge in newest_first]


async def check_introspection() -> GraphQLSchema:
    """The schema gql introspects equals the committed one; only the oneOf-aware introspection keeps @oneOf."""
    default = Client(transport=transport(), fetch_schema_from_transport=True)
    async with default as session:
        assert default.schema is not None
        assert not default.schema.type_map["LinkTarget"].is_one_of  # type: ignore[union-attr]
        try:  # gql's validation lets both keys through; the server's does not
            await session.execute(GraphQLRequest(BOTH_TARGETS))
        except TransportQueryError as error:
            assert "LinkTarget" in str(error), error
        else:
            raise AssertionError("the server took a LinkTarget with both keys")

    client = Client(transport=transport(), fetch_schema_from_transport=True, introspection_args=INTROSPECTION_ARGS)
    async with client:
        pass
    schema = client.schema
    assert schema is not None
    assert schema.type_map["LinkTarget"].is_one_of  # type: ignore[union-attr]
    committed = printed(build_schema(SCHEMA_FILE.read_text()))
    if printed(schema) != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), printed(schema).splitlines(), "schema.graphql", "introspected", lineterm=""
        )
        raise AssertionError("\n".join(diff))
    return schema


async def step(name: str, call: Callable[[], Awaitable[Any]]) -> None:
    try:
        await asyncio.wait_for(call(), timeout=30)
    except (AssertionError, TransportQueryError, GraphQLError, TimeoutError) as error:
        print(f"FAIL  gql: {name}\n{error!r}")
        raise
    print(f"ok    gql: {name}")


async def main() -> int:
    skipped = set(filter(None, os.environ.get("CLIENTS_SKIP", "").split(",")))
    steps: list[tuple[str, str | None, Callable[..., Awaitable[Any]]]] = [
        ("page the queue forward", None, Flow.queue_forward),
        ("typeahead", None, Flow.typeahead),
        ("open the source incident, refetch it through node(id:)", None, Flow.open_and_refetch),
        ("linkAlerts to an existing incident, with a comment and an idempotencyKey", None, Flow.link_to_existing),
        ("linkAlerts to a new incident (target: {createNew: true})", None, Flow.link_to_new),
        ("a LinkTarget with both keys is refused before it is sent", None, Flow.one_of_checked_before_sending),
        ("page the queue backward: the same incidents in the same order", "backward", Flow.queue_backward),
        ("page an activity log backward", "backward", Flow.activity_log_backward),
    ]
    passed = skips = 0
    try:
        await step("introspection keeps @oneOf and matches schema.graphql", check_introspection)
        passed += 1
        client = Client(transport=transport(), fetch_schema_from_transport=True, introspection_args=INTROSPECTION_ARGS)
        async with client as session:
            flow = Flow(session)
            for name, needs, method in steps:
                if needs in skipped:
                    print(f"skip  gql: {name} (CLIENTS_SKIP has {needs})")
                    skips += 1
                    continue
                await step(name, lambda method=method: method(flow))
                passed += 1
    except (AssertionError, TransportQueryError, GraphQLError, TimeoutError):
        print(f"gql: {passed} passed, 1 failed")
        return 1
    print(f"gql: {passed} passed, 0 failed" + (f", {skips} skipped" if skips else ""))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
