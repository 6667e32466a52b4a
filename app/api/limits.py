"""Limits on what one request may ask: depth, aliases, tokens and cost.

Validation rule classes are built once per limit value and reused, so that the
ValidationCache keeps hitting: a rule class made anew for each request would be a new cache key
every time (strawberry issue #4635), and validation would then cost about 9x more.

Cost, in the spirit of Shopify's and GitHub's: every field costs 1, scalars and enums 0, and a
connection field (a type named ...Connection) costs 1 + first x the cost of its selection, with
`first` taken from the literal, the variable or the argument's default. A query whose cost is
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
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.extensions.max_tokens import MaxTokensLimiter

from app.config import _int


@dataclass(frozen=True)
class Limits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_cost: int = 50_000
    introspection: bool = True

    @classmethod
    def from_env(cls, introspection: bool = True) -> Limits:
        return cls(
            max_depth=_int("GRAPHQL_MAX_DEPTH", cls.max_depth),
            max_aliases=_int("GRAPHQL_MAX_ALIASES", cls.max_aliases),
            max_tokens=_int("GRAPHQL_MAX_TOKENS", cls.max_tokens),
            max_cost=_int("GRAPHQL_MAX_COST", cls.max_cost),
            introspection=introspection,
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


def _first(field_node: FieldNode, field_def, variables: dict) -> int:
    arg_def = field_def.args.get("first")
    if arg_def is None:
        return 1
    for arg in field_node.arguments:
        if arg.name.value == "first":
            value = value_from_ast(arg.value, arg_def.type, variables)
            return value if isinstance(value, int) and value > 0 else 1
    default = arg_def.default_value
    return default if isinstance(default, int) and default > 0 else 1


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
            if is_leaf_type(named):
                continue
            inner = selection_cost(selection.selection_set, named, fragments, variables, schema, seen)
            if named.name.endswith("Connection"):
                total += 1 + _first(selection, field_def, variables) * max(inner, 1)
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


def query_cost(document, schema, operation_name: str | None, variables: dict) -> int:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if not operations:
        return 0
    operation = operations[0]
    root = schema.get_root_type(operation.operation)
    return selection_cost(operation.selection_set, root, fragments, variables or {}, schema)


class CostLimiter(SchemaExtension):
    """Refuses a query whose requested cost is over the maximum, and reports every cost."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost
        self.requested: int | None = None

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        # Runs after the validation cache has validated the document: cost needs a valid one.
        if ctx.pre_execution_errors == [] and ctx.graphql_document is not None:
            try:
                self.requested = query_cost(
                    ctx.graphql_document, ctx.schema._schema, ctx.operation_name, ctx.variables or {}
                )
            except Exception:  # malformed variables: execution will report them properly
                self.requested = None
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
