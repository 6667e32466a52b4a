"""Limits on what one request may ask: depth, aliases, tokens and cost.

Validation rule classes are built once per limit value and reused, so that the
ValidationCache keeps hitting: a rule class made anew for each request would be a new cache key
every time (strawberry issue #4635), and validation would then cost about 9x more.

Cost, in the spirit of Shopify's and GitHub's: every object field costs 1, scalars and enums 0,
`totalCount` 10, and a connection field (a type named ...Connection) costs 1 + first x the cost
of its selection, with `first` as the resolver will see it (literal, coerced variable, operation
default or argument default). A mutation costs 1 + n x (10 + the cost of its payload selection),
n being the length of its input list (alertIds, alerts), so aliases cannot multiply the
per-call limits for free. A query whose cost is
over the maximum is refused before it runs; every response reports
extensions.cost = {requested, maximum}.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast,
)
from graphql.execution.values import get_variable_values
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.extensions.max_tokens import MaxTokensLimiter

from app.config import Settings


@dataclass(frozen=True)
class Limits:
    # The defaults are the settings' (app/config.py).
    max_depth: int = Settings.graphql_max_depth
    max_aliases: int = Settings.graphql_max_aliases
    max_tokens: int = Settings.graphql_max_tokens
    max_cost: int = Settings.graphql_max_cost
    introspection: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_depth=settings.graphql_max_depth,
            max_aliases=settings.graphql_max_aliases,
            max_tokens=settings.graphql_max_tokens,
            max_cost=settings.graphql_max_cost,
            introspection=settings.introspection,
        )


@cache
def validation_rules(max_depth: int, max_aliases: int, introspection: bool) -> tuple:
    rules = (
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    )
    if not introspection:
        rules = (*rules, NoSchemaIntrospectionCustomRule)
    return rules


# What a mutation's input list costs per item, and which argument holds it: writing costs more
# than reading, and the payload's lists grow with the input.
WRITE_COST = 10
MUTATION_LISTS = {"linkAlerts": "alertIds", "ingestAlerts": "alerts"}
COUNT_COST = 10  # totalCount: a count over the whole filtered list


def _argument(field_node: FieldNode, field_def, name: str, variables: dict):
    """The value an argument will have at execution: literal, variable or default."""
    arg_def = field_def.args.get(name)
    if arg_def is None:
        return None
    for arg in field_node.arguments or ():
        if arg.name.value == name:
            return value_from_ast(arg.value, arg_def.type, variables)
    return None


def _first(field_node: FieldNode, field_def, variables: dict) -> int:
    """`first` as the resolver will use it: null or absent means the argument's default."""
    value = _argument(field_node, field_def, "first", variables)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        value = field_def.args["first"].default_value
    return value if isinstance(value, int) and value > 0 else 1


def selection_cost(
    selection_set: SelectionSetNode | None,
    parent: GraphQLNamedType,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict,
    schema,
    seen: frozenset[str] = frozenset(),
) -> int:
    if selection_set is None or not isinstance(parent, GraphQLObjectType):
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            field_def = parent.fields.get(selection.name.value)
            if field_def is None:  # __typename and introspection fields
                continue
            named = get_named_type(field_def.type)
            if selection.name.value == "totalCount":
                total += COUNT_COST
                continue
            if is_leaf_type(named):
                continue
            inner = selection_cost(selection.selection_set, named, fragments, variables, schema, seen)
            if named.name.endswith("Connection"):
                total += 1 + _first(selection, field_def, variables) * max(inner, 1)
            elif selection.name.value in MUTATION_LISTS and parent is schema.mutation_type:
                items = _argument(selection, field_def, MUTATION_LISTS[selection.name.value], variables)
                n = len(items) if isinstance(items, list) else 1
                total += 1 + n * (WRITE_COST + inner)
            else:
                total += 1 + inner
        elif isinstance(selection, InlineFragmentNode):
            typ = schema.get_type(selection.type_condition.name.value) if selection.type_condition else parent
            total += selection_cost(selection.selection_set, typ, fragments, variables, schema, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:
                continue
            typ = schema.get_type(fragment.type_condition.name.value)
            total += selection_cost(fragment.selection_set, typ, fragments, variables, schema, seen | {name})
    return total


def query_cost(document, schema, operation_name: str | None, variables: dict) -> int | None:
    """The requested cost, or None when the variables do not fit (execution reports that)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return None
    operation = operations[0]
    # Coerced as execution will coerce them: operation defaults applied, 100.0 read as 100.
    coerced = get_variable_values(schema, operation.variable_definitions or [], variables or {})
    if isinstance(coerced, list):
        return None
    root = schema.get_root_type(operation.operation)
    return selection_cost(operation.selection_set, root, fragments, coerced.coerced, schema)


class CostLimiter(SchemaExtension):
    """Refuses a query whose requested cost is over the maximum, and reports every cost."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost
        self.requested: int | None = None

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        # Runs after the validation cache has validated the document: cost needs a valid one.
        if ctx.pre_execution_errors == [] and ctx.graphql_document is not None:
            self.requested = query_cost(
                ctx.graphql_document, ctx.schema._schema, ctx.operation_name, ctx.variables or {}
            )
            if self.requested is not None and self.requested > self.max_cost:
                ctx.pre_execution_errors = [
                    GraphQLError(
                        f"Query cost {self.requested} is over the maximum of {self.max_cost}; "
                        "ask for smaller pages (first) or fewer nested connections.",
                        extensions={"code": "QUERY_TOO_COSTLY", "cost": self.requested, "maximum": self.max_cost},
                    )
                ]
        yield

    def get_results(self) -> dict:
        return {"cost": {"requested": self.requested, "maximum": self.max_cost}}


def extensions(limits: Limits) -> list:
    """The limit extensions, as factories strawberry instantiates per request."""
    rules = validation_rules(limits.max_depth, limits.max_aliases, limits.introspection)
    return [
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: AddValidationRules(list(rules)),
    ], [lambda: CostLimiter(limits.max_cost)]
