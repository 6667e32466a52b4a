"""The GraphQL layer: it translates between GraphQL and the domain, and nothing more."""
