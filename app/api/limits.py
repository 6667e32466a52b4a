"""Limits on what one request may ask: depth, aliases, tokens and cost.

Validation rule classes are built once per limit value and reused, so that the
ValidationCache keeps hitting: a rule class made anew for each request would be a new cache key
every time (strawberry issue #4635), and validation would then cost about 9x more.

Cost, in the spirit of Shopify's and GitHub's: every object field costs 1, scalars and enums 0,
`totalCount` 10, and a connection field (a type named ...Connection) costs 1 + size x the cost
of its selection, the size being `first` or `last` as the resolver will see it (literal, coerced
variable or operation default), else the connection's default page size (fields.PAGE_SIZES).
A mutation costs 1 + n x (10 + the cost of its payload selection), n being the length of its
input list (alertIds, alerts), so aliases cannot multiply the per-call limits for free.

Introspection is charged too, on what the schema will return: `__schema` and `__type` cost
4 x (1 + the cost of their selection), and inside them an object field costs 1 plus its
selection, and a list (types, fields, args, inputFields, enumValues, interfaces, possibleTypes,
directives) 1 plus, for each item the schema holds, the cost of its selection (at least 1);
`__typename` is free. Each introspected object costs 4 because graphql-core builds it field by
field (about 60 us each here, against 19 us per unit of a page of alerts). The standard
introspection query (graphql-core's, GraphiQL's) costs about 5,500 on this schema; thirty
aliased copies of it cost over 160,000.

A query whose cost is over the maximum is refused before it runs; every response reports
extensions.cost = {requested, maximum}.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Visitor,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_wrapping_type,
    value_from_ast,
    visit,
)
from graphql.execution.values import get_variable_values
from graphql.type.introspection import TypeMetaFieldDef
from graphql.validation import ASTValidationContext, ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.extensions.max_tokens import MaxTokensLimiter

from app.api.fields import PAGE_SIZES
from app.config import Settings, settings


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


class _Spreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_args) -> None:
        self.names.add(node.name.value)


def _unknown_fragments(document: DocumentNode) -> bool:
    """Whether the document spreads a fragment it does not define."""
    defined = {d.name.value for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    spreads = _Spreads()
    visit(document, spreads)
    return not spreads.names <= defined


def _known_fragments_only(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """The rule, checking nothing in a document that spreads an unknown fragment: strawberry's depth
    limiter looks such a fragment up while it is made and raised KeyError (a 500), where
    graphql-core's KnownFragmentNames reports it as the validation error it is."""

    class Rule(ASTValidationRule):
        def __new__(cls, context: ASTValidationContext) -> ASTValidationRule:  # type: ignore[misc]
            if _unknown_fragments(context.document):
                return ASTValidationRule(context)
            return rule(context)

    Rule.__name__ = rule.__name__
    return Rule


@cache
def validation_rules(max_depth: int, max_aliases: int, introspection: bool) -> tuple:
    rules = (
        *(_known_fragments_only(rule) for rule in QueryDepthLimiter(max_depth=max_depth).validation_rules),
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    )
    if not introspection:
        rules = (*rules, NoSchemaIntrospectionCustomRule)
    return rules


# What a mutation's input list costs per item, and which argument holds it: writing costs more
# than reading, and the payload's lists grow with the input.
WRITE_COST = 10
MUTATION_LISTS = {"linkAlerts": "alertIds", "ingestAlerts": "alerts", "mergeIncidents": "incidentIds"}
# Root fields that answer one object per id given: each object costs what its selection costs.
ID_LISTS = {"nodes": "ids"}
COUNT_COST = 10  # totalCount: a count over the whole filtered list
INTROSPECTION_COST = 4  # per introspected object: see the module's docstring


def _argument(field_node: FieldNode, field_def, name: str, variables: dict):
    """The value an argument will have at execution: literal, variable or default."""
    arg_def = field_def.args.get(name)
    if arg_def is None:
        return None
    for arg in field_node.arguments or ():
        if arg.name.value == name:
            return value_from_ast(arg.value, arg_def.type, variables)
    return None


def _page_size(field_node: FieldNode, field_def, variables: dict, default: int) -> int:
    """The page size as the resolver will use it: `first` or `last` (the larger, should a request
    give both, which is refused), else the connection's default."""
    sizes = [_argument(field_node, field_def, name, variables) for name in ("first", "last")]
    given = [n for n in sizes if isinstance(n, int) and not isinstance(n, bool) and n > 0]
    return max(given, default=default)


# --- introspection -----------------------------------------------------------------------------

# An introspected element: its introspection type, a key naming it, and the schema's object.
Element = tuple[str, str, object]


def _type_element(typ) -> Element:
    return "__Type", str(typ), typ


def _introspected(schema: GraphQLSchema, element: Element, name: str) -> list[Element]:
    """What the introspection field `name` returns on `element`, read off the schema."""
    kind, key, obj = element
    if kind == "__Schema":
        if name == "types":
            return [_type_element(t) for t in schema.type_map.values()]
        if name == "directives":
            return [("__Directive", f"@{d.name}", d) for d in schema.directives]
        root = {
            "queryType": schema.query_type,
            "mutationType": schema.mutation_type,
            "subscriptionType": schema.subscription_type,
        }.get(name)
        return [_type_element(root)] if root is not None else []
    if kind == "__Type":
        if name == "ofType":
            return [_type_element(obj.of_type)] if is_wrapping_type(obj) else []
        if isinstance(obj, GraphQLObjectType | GraphQLInterfaceType):
            if name == "fields":
                return [("__Field", f"{key}.{n}", f) for n, f in obj.fields.items()]
            if name == "interfaces":
                return [_type_element(i) for i in obj.interfaces]
        if name == "possibleTypes" and is_abstract_type(obj):
            return [_type_element(t) for t in schema.get_possible_types(obj)]
        if name == "enumValues" and isinstance(obj, GraphQLEnumType):
            return [("__EnumValue", f"{key}.{n}", v) for n, v in obj.values.items()]
        if name == "inputFields" and isinstance(obj, GraphQLInputObjectType):
            return [("__InputValue", f"{key}.{n}", f) for n, f in obj.fields.items()]
        return []
    if name == "args":  # of a __Field or a __Directive
        return [("__InputValue", f"{key}({n})", a) for n, a in obj.args.items()]
    if name == "type":  # of a __Field or an __InputValue
        return [_type_element(obj.type)]
    return []


class _Introspection:
    """The cost of introspection selections, counted on what the schema will return.

    Counts are kept per (selection set, element): a fragment spread under thirty aliases is
    counted once, and the work is bounded by the document's size times the schema's.
    """

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.costs: dict[tuple[int, str, str], int] = {}
        self.composite: dict[tuple[int, str], list[tuple[FieldNode, GraphQLField]]] = {}

    def root(self, field_node: FieldNode, variables: dict) -> int:
        """`__schema` or `__type`: INTROSPECTION_COST x (1 + its selection on what it names)."""
        if field_node.name.value == "__schema":
            count = self.cost(field_node.selection_set, ("__Schema", "", self.schema))
        else:  # a name that no type has answers null
            name = _argument(field_node, TypeMetaFieldDef, "name", variables)
            named = self.schema.get_type(name) if isinstance(name, str) else None
            count = self.cost(field_node.selection_set, _type_element(named)) if named is not None else 0
        return INTROSPECTION_COST * (1 + count)

    def cost(self, selection_set: SelectionSetNode | None, element: Element) -> int:
        if selection_set is None:
            return 0
        key = (id(selection_set), element[0], element[1])
        known = self.costs.get(key)
        if known is not None:
            return known
        total = 0
        for field_node, field_def in self._composite(selection_set, element[0]):
            items = _introspected(self.schema, element, field_node.name.value)
            inner = [self.cost(field_node.selection_set, item) for item in items]
            if is_list_type(get_nullable_type(field_def.type)):
                total += 1 + sum(max(c, 1) for c in inner)
            else:
                total += 1 + sum(inner)
        self.costs[key] = total
        return total

    def _composite(self, selection_set: SelectionSetNode, kind: str) -> list[tuple[FieldNode, GraphQLField]]:
        """The fields of a selection that return objects, fragments spread; leaves cost nothing."""
        key = (id(selection_set), kind)
        found = self.composite.get(key)
        if found is None:
            found = self.composite[key] = list(self._walk(selection_set, self.schema.get_type(kind), frozenset()))
        return found

    def _walk(self, selection_set: SelectionSetNode, parent: GraphQLObjectType, seen: frozenset[str]):
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                field_def = parent.fields.get(selection.name.value)
                if field_def is not None and not is_leaf_type(get_named_type(field_def.type)):
                    yield selection, field_def
            elif isinstance(selection, InlineFragmentNode):
                yield from self._walk(selection.selection_set, parent, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen:
                    yield from self._walk(fragment.selection_set, parent, seen | {name})


# --- the cost of a selection ---------------------------------------------------------------------


def selection_cost(
    selection_set: SelectionSetNode | None,
    parent: GraphQLNamedType,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict,
    schema,
    seen: frozenset[str] = frozenset(),
    introspection: _Introspection | None = None,
) -> int:
    if selection_set is None:
        return 0
    if isinstance(parent, GraphQLInterfaceType | GraphQLUnionType):
        # What the object turns out to be is known only when it runs: the costliest it may be.
        return max(
            (
                selection_cost(selection_set, t, fragments, variables, schema, seen, introspection)
                for t in schema.get_possible_types(parent)
            ),
            default=0,
        )
    if not isinstance(parent, GraphQLObjectType):
        return 0
    if introspection is None:
        introspection = _Introspection(schema, fragments)
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value in ("__schema", "__type") and parent is schema.query_type:
                total += introspection.root(selection, variables)
                continue
            field_def = parent.fields.get(selection.name.value)
            if field_def is None:  # __typename
                continue
            named = get_named_type(field_def.type)
            if selection.name.value == "totalCount":
                total += COUNT_COST
                continue
            if is_leaf_type(named):
                continue
            inner = selection_cost(selection.selection_set, named, fragments, variables, schema, seen, introspection)
            if named.name.endswith("Connection"):
                # A connection without a page size of its own is charged the largest page: the
                # limit fails closed (tests/test_hardening.py holds PAGE_SIZES complete).
                default = PAGE_SIZES.get((parent.name, selection.name.value), settings().max_page_size)
                total += 1 + _page_size(selection, field_def, variables, default) * max(inner, 1)
            elif parent is schema.query_type and selection.name.value in ID_LISTS:
                ids = _argument(selection, field_def, ID_LISTS[selection.name.value], variables)
                total += 1 + (len(ids) if isinstance(ids, list) else 1) * max(inner, 1)
            elif selection.name.value in MUTATION_LISTS and parent is schema.mutation_type:
                items = _argument(selection, field_def, MUTATION_LISTS[selection.name.value], variables)
                n = len(items) if isinstance(items, list) else 1
                total += 1 + n * (WRITE_COST + inner)
            else:
                total += 1 + inner
        elif isinstance(selection, InlineFragmentNode):
            # On an object, a fragment applies to that object (on it, or on an interface it
            # implements) or to nothing: its fields cost what they cost on this object.
            if _applies(schema, selection.type_condition, parent):
                total += selection_cost(
                    selection.selection_set, parent, fragments, variables, schema, seen, introspection
                )
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:
                continue
            if _applies(schema, fragment.type_condition, parent):
                total += selection_cost(
                    fragment.selection_set, parent, fragments, variables, schema, seen | {name}, introspection
                )
    return total


def _applies(schema, condition, parent: GraphQLObjectType) -> bool:
    """Whether a fragment with this type condition applies to an object of type parent."""
    if condition is None:
        return True
    typ = schema.get_type(condition.name.value)
    return typ is parent or (
        typ is not None and not isinstance(typ, GraphQLObjectType) and schema.is_sub_type(typ, parent)
    )


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
