// graphql-schema-linter (pinned in package.json) over the committed schema.graphql: `make schema-lint`,
// part of .ci/run. tests/test_schema.py checks the descriptions in `make test` too, without node.
//
// The rules, and why each is on:
// - types-have-descriptions, fields-have-descriptions, arguments-have-descriptions,
//   input-object-values-have-descriptions, enum-values-have-descriptions: GraphiQL and generated
//   clients show the descriptions; an analyst or a frontend developer should learn there what a
//   field means, its units and format, its default and limits, when it is null, and when each
//   error code is returned, without reading the server's code.
// - descriptions-are-capitalized: descriptions read as sentences, the same everywhere.
// - deprecations-have-a-reason: a client that meets @deprecated learns what to use instead.
// - defined-types-are-used: a type nothing reaches is dead code that clients still generate types for.
// - relay-connection-types-spec, relay-page-info-spec, relay-connection-arguments-spec: Relay's
//   @connection, Apollo's relayStylePagination and urql's relayPagination rely on the cursor
//   connections spec: edges, a non-null PageInfo with hasNextPage and hasPreviousPage, and
//   first/after and last/before arguments.
// - types-are-capitalized, fields-are-camel-cased, input-object-values-are-camel-cased,
//   enum-values-all-caps: GraphQL's naming conventions, which generated client code relies on;
//   strawberry camel-cases names by itself, so these catch an explicit name= that breaks them.
//
// Off, and why:
// - type-fields-sorted-alphabetically, interface-fields-sorted-alphabetically,
//   input-object-fields-sorted-alphabetically: fields are in reading order (id first, then what
//   a person looks at), which GraphiQL shows as it is.
// - enum-values-sorted-alphabetically: some enums are ordered by meaning (Severity runs from the
//   lowest to the highest, the status enums follow an incident's life).
module.exports = {
  rules: [
    'types-have-descriptions',
    'fields-have-descriptions',
    'arguments-have-descriptions',
    'input-object-values-have-descriptions',
    'enum-values-have-descriptions',
    'descriptions-are-capitalized',
    'deprecations-have-a-reason',
    'defined-types-are-used',
    'relay-connection-types-spec',
    'relay-page-info-spec',
    'relay-connection-arguments-spec',
    'types-are-capitalized',
    'fields-are-camel-cased',
    'input-object-values-are-camel-cased',
    'enum-values-all-caps',
  ],
};
