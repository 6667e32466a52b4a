"""incident-graph: a GraphQL API for moving alerts between incidents."""
