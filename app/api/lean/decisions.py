"""What the lean path knows of the schema, decided field by field. Anything else steps aside.

A field without a resolver reads its record's attribute on both paths and needs no decision; its
value is serialised by its GraphQL type (leaf_source), so a new enum value or scalar field works on
both paths. A field with a resolver is either COVERED, with the arguments the lean path passes to
its batch (app/api/fields.py) and the input fields it knows, or NORMAL_ONLY. A field, argument or
input field the schema has and these tables do not is unknown: documents that use the field go the
normal way, and tests/test_lean_coverage.py fails until someone decides.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
)

# Fields with a resolver that the lean path runs, each with every argument it reads.
COVERED: dict[tuple[str, str], frozenset[str]] = {
    ("Query", "incident"): frozenset({"id", "number"}),
    ("Query", "incidents"): frozenset({"filter", "sort", "first", "after", "last", "before"}),
    ("Query", "alert"): frozenset({"id", "number"}),
    ("Query", "move"): frozenset({"id", "number"}),
    ("Query", "alerts"): frozenset({"filter", "first", "after", "last", "before"}),
    ("Mutation", "linkAlerts"): frozenset({"alertIds", "target", "comment", "idempotencyKey"}),
    ("Mutation", "ingestAlerts"): frozenset({"alerts"}),
    ("Incident", "alertCount"): frozenset(),
    ("Incident", "name"): frozenset(),
    ("Incident", "severity"): frozenset(),
    ("Incident", "lastActivityAt"): frozenset(),
    ("Incident", "alerts"): frozenset({"first", "after", "last", "before"}),
    ("Incident", "activityLog"): frozenset({"first", "after", "last", "before"}),
    ("Incident", "redirectIncident"): frozenset(),
    ("Alert", "incident"): frozenset(),
    ("Alert", "entities"): frozenset(),
    ("Alert", "viewerCanLink"): frozenset(),
    ("ActivityLogEntry", "message"): frozenset(),
    ("ActivityLogEntry", "comment"): frozenset(),
    ("ActivityLogEntry", "incident"): frozenset(),
    ("ActivityLogEntry", "alert"): frozenset(),
    ("ActivityLogEntry", "otherIncident"): frozenset(),
    ("IncidentConnection", "totalCount"): frozenset(),
    ("AlertConnection", "totalCount"): frozenset(),
    ("ActivityLogEntryConnection", "totalCount"): frozenset(),
    # Issue 14: merges, reverts and provenance. The console's merge and undo run them here.
    ("Mutation", "mergeIncidents"): frozenset(
        {"incidentIds", "targetIncidentId", "comment", "reasons", "idempotencyKey"}
    ),
    ("Mutation", "revertMove"): frozenset({"moveId", "comment", "idempotencyKey"}),
    ("LinkAlertsPayload", "move"): frozenset(),
    ("MergeIncidentsPayload", "move"): frozenset(),
    ("RevertMovePayload", "move"): frozenset(),
    ("RevertMovePayload", "reverted"): frozenset(),
    ("Incident", "moves"): frozenset({"first", "after", "last", "before"}),
    ("Alert", "history"): frozenset(),
    ("ActivityLogEntry", "move"): frozenset(),
    ("Move", "comment"): frozenset(),
    ("Move", "alertCount"): frozenset(),
    ("Move", "items"): frozenset({"first", "after", "last", "before"}),
    ("Move", "target"): frozenset(),
    ("Move", "sources"): frozenset(),
    ("Move", "reverts"): frozenset(),
    ("Move", "revertedBy"): frozenset(),
    ("Move", "viewerCanRevert"): frozenset(),
    ("MoveItem", "alert"): frozenset(),
    ("MoveItem", "from"): frozenset(),
    ("MoveItem", "to"): frozenset(),
    ("AlertPlacement", "incident"): frozenset(),
    ("AlertPlacement", "move"): frozenset(),
    ("MoveConnection", "totalCount"): frozenset(),
    ("MoveItemConnection", "totalCount"): frozenset(),
    ("Incident", "viewerCanUpdate"): frozenset(),
    # Issue 16: the evidence a search matched rides on the incidents the queue's batch found, on
    # both paths alike (a plain attribute read; empty outside a search).
    ("Incident", "matchedEvidence"): frozenset(),
}

# Every field of the input objects those arguments take, as the batches read them.
INPUTS: dict[str, frozenset[str]] = {
    # Issue 15: the triage filters and sorts are the same batch on both paths (the typeahead keeps its
    # own steps: another sort reads one index in its order, PLAIN).
    "IncidentFilter": frozenset(
        {"search", "status", "severity", "assignedTo", "unassigned", "classification", "updatedSince", "entity"}
    ),
    "AlertFilter": frozenset({"search", "incidentId", "status", "severity", "entity"}),
    "EntityFilter": frozenset({"kind", "value"}),
    "LinkTarget": frozenset({"existingIncidentId", "createNew"}),
    "AlertInput": frozenset({"externalId", "title", "severity", "category", "scope", "detectedAt", "entities"}),
    "EntityInput": frozenset({"kind", "value"}),
}

# Fields with a resolver that only the normal path runs: rare, and cheap there.
NORMAL_ONLY: frozenset[tuple[str, str]] = frozenset(
    {
        ("Query", "viewer"),
        ("Viewer", "grants"),
        # Their type is the Node interface: the lean path plans object types only.
        ("Query", "node"),
        ("Query", "nodes"),
        # Issue 15: triage changes are one incident at a time, a few per analyst a minute.
        ("Mutation", "updateIncident"),
        ("Mutation", "addComment"),
        # A stream, not a batch: the lean path plans queries and mutations only (app/api/subscriptions.py).
        ("Subscription", "incidentChanges"),
    }
)


def has_resolver(field: GraphQLField) -> bool:
    definition = field.extensions.get("strawberry-definition")
    return definition is None or definition.base_resolver is not None


def python_name(field: GraphQLField) -> str:
    return field.extensions["strawberry-definition"].python_name


def _input_unknowns(typ, seen: set[str]) -> list[str]:
    named = get_named_type(typ)
    if not isinstance(named, GraphQLInputObjectType) or named.name in seen:
        return []
    seen.add(named.name)
    known = INPUTS.get(named.name, frozenset())
    unknown = [f"{named.name}.{name}" for name in named.fields if name not in known]
    for field in named.fields.values():
        unknown += _input_unknowns(field.type, seen)
    return unknown


def undecided(schema: GraphQLSchema, type_name: str, field_name: str) -> list[str]:
    """What the lean path does not know about this field: empty when it may run it."""
    field = schema.get_type(type_name).fields[field_name]
    if not has_resolver(field):
        return [] if not field.args else [f"{type_name}.{field_name}(args without a resolver)"]
    coordinate = (type_name, field_name)
    if coordinate in NORMAL_ONLY:
        return [f"{type_name}.{field_name}(normal path only)"]
    if coordinate not in COVERED:
        return [f"{type_name}.{field_name}"]
    unknown = [f"{type_name}.{field_name}({name}:)" for name in field.args if name not in COVERED[coordinate]]
    seen: set[str] = set()
    for arg in field.args.values():
        unknown += _input_unknowns(arg.type, seen)
    return unknown


def coverage_gaps(schema: GraphQLSchema) -> list[str]:
    """Every schema coordinate with no decision for the lean path (tests/test_lean_coverage.py)."""
    gaps = []
    for typ in schema.type_map.values():
        if not isinstance(typ, GraphQLObjectType) or typ.name.startswith("__"):
            continue
        for name in typ.fields:
            if (typ.name, name) in NORMAL_ONLY:
                continue
            gaps += undecided(schema, typ.name, name)
    return gaps


# --- leaves, serialised as the schema does -------------------------------------------------------

# Serialised as they are. Int is not: graphql-core refuses a value past 32 bits, and so must
# this path (the database keeps numbers within it: db/migrations/0013; counts are far below).
_PLAIN = {"String", "Boolean", "Float"}


def leaf_source(typ, value: str, namespace: dict[str, Any], nullable: bool = True) -> str:
    """A Python expression for the serialised form of `value` (an expression) of this GraphQL
    type, with whatever it needs put in namespace. Enums map through the schema's own table of
    values, custom scalars go through their own serialize."""
    if isinstance(typ, GraphQLNonNull):
        return leaf_source(typ.of_type, value, namespace, nullable=False)
    if isinstance(typ, GraphQLList):
        item = leaf_source(typ.of_type, "x", namespace)
        inner = f"[{item} for x in {value}]"
    elif isinstance(typ, GraphQLEnumType):
        name = f"enum_{typ.name}"
        namespace[name] = {v.value: key for key, v in typ.values.items()}
        inner = f"{name}[{value}]"
    elif isinstance(typ, GraphQLScalarType) and typ.name in _PLAIN:
        return value
    elif isinstance(typ, GraphQLScalarType) and typ.name == "ID":
        inner = f"str({value})"
    elif isinstance(typ, GraphQLScalarType):
        name = f"scalar_{typ.name}"
        namespace[name] = typ.serialize
        inner = f"{name}({value})"
    else:
        raise TypeError(f"not a leaf type: {typ}")
    return f"(None if {value} is None else {inner})" if nullable else inner
