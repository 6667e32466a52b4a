"""Compiling a document into a plan: per selected type, the fields and how to get each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectFieldNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    parse,
)
from graphql.execution.values import get_argument_values
from graphql.validation import specified_rules
from strawberry.schema.schema import validate_document

from app.api import fields
from app.api.lean import decisions
from app.api.limits import Limits, selection_cost, validation_rules


class Unsupported(Exception):
    """The document uses something this path does not do: the normal path takes it."""


@dataclass
class FieldPlan:
    key: str
    name: str
    node: FieldNode
    definition: Any
    batch: Callable | None = None  # the field's batch, or None for a leaf read off the record
    many: bool = False  # the value is a list of records
    sub: Level | None = None  # the selection on an object value
    source: str | None = None  # a leaf read off the record p: an expression of p
    leaf: Any = None  # a leaf's GraphQL type
    _fixed: dict | None = None  # the arguments, when no variable is among them

    def arguments(self, variables) -> dict:
        if self._fixed is not None:
            return self._fixed
        if not self.node.arguments:
            return {}
        values = get_argument_values(self.definition, self.node, variables)
        if not _has_variables(self.node.arguments):
            self._fixed = values
        return values


def _attribute(name: str) -> Callable:
    def read(parents, args, ctx):
        return [getattr(p, name) for p in parents]

    return read


class Level(list):
    """The fields selected on one type, and `build`: a comprehension generated for them that
    makes the response objects from the parent records and the batch fields' values."""

    build: Callable

    def __init__(self, plans: list[FieldPlan]) -> None:
        super().__init__(plans)
        namespace: dict[str, Any] = {}
        values, batches = [], []
        for n, plan in enumerate(plans):
            if plan.batch is None:
                value = plan.source
            else:
                batches.append(f"b{n}")
                value = f"v{n}"
            values.append(value if plan.leaf is None else decisions.leaf_source(plan.leaf, value, namespace))
        items = ", ".join(f"{plan.key!r}: {value}" for plan, value in zip(plans, values, strict=True))
        names = ", ".join(b.replace("b", "v", 1) for b in batches)
        loop = f"for p, {names} in zip(parents, {', '.join(batches)}, strict=True)" if batches else "for p in parents"
        source = f"def build(parents, {''.join(b + ', ' for b in batches)}):\n    return [{{{items}}} {loop}]\n"
        exec(source, namespace)
        self.build = namespace["build"]


def _has_variables(node) -> bool:
    if isinstance(node, VariableNode):
        return True
    if isinstance(node, (list, tuple)):
        return any(_has_variables(n) for n in node)
    if isinstance(node, ArgumentNode | ObjectFieldNode):
        return _has_variables(node.value)
    if isinstance(node, ListValueNode):
        return _has_variables(node.values)
    if isinstance(node, ObjectValueNode):
        return _has_variables(node.fields)
    return False


@dataclass
class Plan:
    document: DocumentNode
    operation: OperationDefinitionNode
    roots: list[FieldPlan]
    fragments: dict[str, FragmentDefinitionNode]
    costs: dict[tuple, int] = dataclass_field(default_factory=dict)

    @property
    def is_mutation(self) -> bool:
        return self.operation.operation == OperationType.MUTATION

    def cost(self, schema: GraphQLSchema, variables: dict) -> int:
        """As limits.query_cost counts it, from the variables already coerced.

        The cost reads variables only as `first` or `last` (numbers) and as mutation input lists
        (their length), so it is kept by the shape of the variables: numbers, nulls and list lengths.
        """
        shape = tuple(_shape(variables.get(d.variable.name.value)) for d in self.operation.variable_definitions or ())
        cost = self.costs.get(shape)
        if cost is None:
            root_type = schema.get_root_type(self.operation.operation)
            cost = selection_cost(self.operation.selection_set, root_type, self.fragments, variables, schema)
            if len(self.costs) >= 64:
                self.costs.clear()
            self.costs[shape] = cost
        return cost


def _shape(value) -> object:
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, list):
        return ("list", len(value))
    return type(value).__name__


def _collect(selection_set: SelectionSetNode, applies: frozenset[str], fragments) -> dict[str, list[FieldNode]]:
    """The fields selected on an object whose type or interfaces are `applies`, by response key."""
    found: dict[str, list[FieldNode]] = {}
    for selection in selection_set.selections:
        if selection.directives:
            raise Unsupported("directives")
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            found.setdefault(key, []).append(selection)
            continue
        if isinstance(selection, InlineFragmentNode):
            condition, inner = selection.type_condition, selection.selection_set
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            condition, inner = fragment.type_condition, fragment.selection_set
        else:
            raise Unsupported(type(selection).__name__)
        if condition is not None and condition.name.value not in applies:
            raise Unsupported("fragment on another type")
        for key, nodes in _collect(inner, applies, fragments).items():
            found.setdefault(key, []).extend(nodes)
    return found


def _merged(nodes: list[FieldNode]) -> SelectionSetNode | None:
    if nodes[0].selection_set is None:
        return None
    if len(nodes) == 1:
        return nodes[0].selection_set
    return SelectionSetNode(selections=tuple(s for n in nodes for s in n.selection_set.selections))


def _plan_level(schema: GraphQLSchema, selection_set, type_name: str, fragments) -> Level:
    gql_type = schema.get_type(type_name)
    plans = []
    applies = frozenset({type_name, *(i.name for i in getattr(gql_type, "interfaces", ()))})
    for key, nodes in _collect(selection_set, applies, fragments).items():
        name = nodes[0].name.value
        if name == "__typename":
            plans.append(FieldPlan(key, name, nodes[0], None, source=repr(type_name)))
            continue
        if name.startswith("__"):
            raise Unsupported("introspection")
        definition = gql_type.fields[name]
        unknown = decisions.undecided(schema, type_name, name)
        if unknown:
            raise Unsupported(", ".join(unknown))
        plan = FieldPlan(key, name, nodes[0], definition)
        inner = definition.type.of_type if is_non_null_type(definition.type) else definition.type
        plan.many = is_list_type(inner)
        named = get_named_type(definition.type)
        if decisions.has_resolver(definition):
            plan.batch = fields.BATCHES[(type_name, name)]
        elif is_leaf_type(named):
            plan.source = f"p.{decisions.python_name(definition)}"
        else:
            plan.batch = _attribute(decisions.python_name(definition))
        if is_leaf_type(named):
            plan.leaf = definition.type
        else:
            merged = _merged(nodes)
            if merged is None:
                raise Unsupported("object without selection")
            plan.sub = _plan_level(schema, merged, named.name, fragments)
        plans.append(plan)
    return Level(plans)


def compile_document(schema: GraphQLSchema, query: str, operation_name: str | None, limits: Limits) -> Plan:
    document = parse(query, max_tokens=limits.max_tokens)
    rules = (*specified_rules, *validation_rules(limits.max_depth, limits.max_aliases, limits.introspection))
    if validate_document(schema, document, rules):
        raise Unsupported("invalid document")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation not in (OperationType.QUERY, OperationType.MUTATION):
        raise Unsupported("not one query or mutation")
    operation = operations[0]
    if operation.directives:
        raise Unsupported("directives")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    root_type = schema.get_root_type(operation.operation)
    roots = list(_plan_level(schema, operation.selection_set, root_type.name, fragments))
    if any(root.batch is None for root in roots):
        raise Unsupported("__typename at the root")  # rare; the roots here are all batches
    if operation.operation == OperationType.MUTATION and len(roots) != 1:
        raise Unsupported("one mutation at a time")
    return Plan(document, operation, roots, fragments)


def plan_change(
    schema: GraphQLSchema, operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> FieldPlan:
    """The plan of a live change's rendering (app/api/change_renders.py): the subscription's one
    root field, incidentChanges, and its selection on IncidentChange, whose record the feed gives.
    Unsupported as for a query: directives, undecided fields. The document was validated when the
    subscription started."""
    if operation.operation != OperationType.SUBSCRIPTION or operation.directives:
        raise Unsupported("not a subscription without directives")
    root_type = schema.subscription_type
    if root_type is None:
        raise Unsupported("no subscriptions")
    selected = _collect(operation.selection_set, frozenset({root_type.name}), fragments)
    if len(selected) != 1:
        raise Unsupported("one root field")
    [(key, nodes)] = selected.items()
    if any(n.name.value != "incidentChanges" for n in nodes):
        raise Unsupported("another subscription field")
    definition = root_type.fields["incidentChanges"]
    merged = _merged(nodes)
    if merged is None:
        raise Unsupported("object without selection")
    sub = _plan_level(schema, merged, get_named_type(definition.type).name, fragments)
    return FieldPlan(key, "incidentChanges", nodes[0], definition, sub=sub)
