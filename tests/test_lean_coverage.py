"""The lean path decides on every field, argument and input field of the schema, or steps aside.

Given the schema, when someone adds a field, an argument, an input field or a resolver without
deciding for the lean path (app/api/lean/decisions.py) and giving the field its batch
(app/api/fields.py), then these tests fail, and until they decide, documents that use it go the
normal way.
"""

from __future__ import annotations

from graphql import GraphQLObjectType, extend_schema, parse

from app.api import fields
from app.api.lean import LeanPath, decisions
from app.api.limits import Limits
from app.api.schema import build_schema

SCHEMA = build_schema()._schema
QUEUE = "query($f: IncidentFilter) { incidents(filter: $f, first: 5) { edges { node { id name } } } }"
ALERTS = "{ alerts(first: 5) { edges { node { id title } } } }"


def test_every_field_of_the_schema_has_a_decision_for_the_lean_path():
    assert decisions.coverage_gaps(SCHEMA) == []


def test_every_field_with_a_resolver_has_its_one_batch():
    # A subscription's field is a stream (app/api/subscriptions.py), not a batch: it is decided
    # NORMAL_ONLY, below.
    resolved = {
        (typ.name, name)
        for typ in SCHEMA.type_map.values()
        if isinstance(typ, GraphQLObjectType) and not typ.name.startswith("__") and typ is not SCHEMA.subscription_type
        for name, field in typ.fields.items()
        if decisions.has_resolver(field)
    }
    assert resolved == set(fields.BATCHES)


def test_subscriptions_run_on_the_normal_path_only():
    # Given every field of the subscription root is decided NORMAL_ONLY
    assert {("Subscription", name) for name in SCHEMA.subscription_type.fields} <= decisions.NORMAL_ONLY
    # then the lean path steps aside for a subscription document
    lean = LeanPath(SCHEMA, Limits())
    assert lean.plan("subscription { incidentChanges { cursor } }", None) is None


def test_decisions_name_only_what_the_schema_has():
    coordinates = {
        (typ.name, name)
        for typ in SCHEMA.type_map.values()
        if isinstance(typ, GraphQLObjectType)
        for name in typ.fields
    }
    assert set(decisions.COVERED) <= coordinates
    assert coordinates >= decisions.NORMAL_ONLY
    for (type_name, name), known in decisions.COVERED.items():
        assert known == set(SCHEMA.get_type(type_name).fields[name].args), (type_name, name)
    for input_name, known in decisions.INPUTS.items():
        assert known == set(SCHEMA.get_type(input_name).fields), input_name


def test_a_filter_field_without_a_decision_fails_the_coverage_and_the_lean_path_steps_aside():
    # Given IncidentFilter with an input field the lean path has not decided on
    extended = extend_schema(SCHEMA, parse("extend input IncidentFilter { assignee: String }"))
    # then the coverage names it
    assert decisions.coverage_gaps(extended) == ["IncidentFilter.assignee"]
    # and every document on the queue goes the normal way, whether or not it spells the field
    lean = LeanPath(extended, Limits())
    assert lean.plan(QUEUE, None) is None
    assert lean.plan('{ incidents(filter: {assignee: "ana"}) { totalCount } }', None) is None
    # while the rest of the schema keeps its lean plans
    assert lean.plan(ALERTS, None) is not None


def test_an_argument_or_a_resolver_field_without_a_decision_makes_the_lean_path_step_aside():
    extended = extend_schema(
        SCHEMA, parse("extend type Incident { assignee: String } extend type Query { incidentsBy(owner: String): Int }")
    )
    # Fields added outside strawberry have resolvers no one decided on.
    assert set(decisions.coverage_gaps(extended)) == {"Incident.assignee", "Query.incidentsBy"}
    lean = LeanPath(extended, Limits())
    assert lean.plan("{ incidents { edges { node { id assignee } } } }", None) is None
    assert lean.plan("{ incidents { edges { node { id } } } }", None) is not None


def test_the_same_filter_fields_work_on_both_paths_when_decided():
    lean = LeanPath(SCHEMA, Limits())
    for flt in ('{search: "x"}', "{status: [ACTIVE]}", "{severity: [HIGH, LOW]}"):
        assert lean.plan(f"{{ incidents(filter: {flt}) {{ totalCount }} }}", None) is not None, flt
