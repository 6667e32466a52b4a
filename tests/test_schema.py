"""The committed schema.graphql is what the code exports (`make schema` regenerates it), and
every element of the schema says what it is (GraphiQL and generated clients show it)."""

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    is_introspection_type,
    is_specified_directive,
    is_specified_scalar_type,
)

from app.api.schema import build_schema
from app.config import ROOT


def test_committed_schema_matches_the_code():
    committed = (ROOT / "schema.graphql").read_text()
    exported = build_schema().as_str() + "\n"
    assert committed == exported, "schema.graphql is stale: run `make schema` and commit it"


def undescribed(schema) -> list[str]:
    """The schema coordinates (Type, Type.field, Type.field(arg:), Enum.VALUE, @directive(arg:))
    of every type, field, argument, input field and enum value without a description."""
    missing = []

    def check(coordinate: str, element) -> None:
        if not (element.description or "").strip():
            missing.append(coordinate)

    for name, typ in schema.type_map.items():
        if is_introspection_type(typ) or is_specified_scalar_type(typ):
            continue
        check(name, typ)
        if isinstance(typ, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in typ.fields.items():
                check(f"{name}.{field_name}", field)
                for arg_name, arg in field.args.items():
                    check(f"{name}.{field_name}({arg_name}:)", arg)
        elif isinstance(typ, GraphQLInputObjectType):
            for field_name, field in typ.fields.items():
                check(f"{name}.{field_name}", field)
        elif isinstance(typ, GraphQLEnumType):
            for value_name, value in typ.values.items():
                check(f"{name}.{value_name}", value)
        else:
            assert isinstance(typ, GraphQLScalarType), f"{name}: a kind of type this test does not know"
    for directive in schema.directives:
        if not is_specified_directive(directive):
            check(f"@{directive.name}", directive)
            for arg_name, arg in directive.args.items():
                check(f"@{directive.name}({arg_name}:)", arg)
    return missing


def test_every_element_of_the_schema_has_a_description():
    missing = undescribed(build_schema()._schema)
    assert not missing, f"{len(missing)} without a description: {', '.join(missing)}"


def test_date_time_says_where_it_is_specified():
    date_time = build_schema()._schema.type_map["DateTime"]
    assert date_time.specified_by_url == "https://datatracker.ietf.org/doc/html/rfc3339"
