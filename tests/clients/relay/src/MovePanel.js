// The move panel: its typeahead, and linkAlerts with Relay's declarative connection updates.
// The moved alerts leave the source incident's Alerts tab (@deleteEdge) and join the target's
// (@appendNode); pass the connections' ids (ConnectionHandler.getConnectionID) as variables.
graphql`
  query MovePanelTypeaheadQuery($search: String!) {
    incidents(filter: { search: $search, status: [ACTIVE, IN_PROGRESS] }, first: 10) {
      edges {
        node {
          id
          ...IncidentRow_incident
        }
      }
    }
  }
`;

graphql`
  mutation MovePanelLinkAlertsMutation(
    $alertIds: [ID!]!
    $target: LinkTarget!
    $comment: String!
    $idempotencyKey: String
    $sourceConnections: [ID!]!
    $targetConnections: [ID!]!
  ) {
    linkAlerts(alertIds: $alertIds, target: $target, comment: $comment, idempotencyKey: $idempotencyKey) {
      targetIncident {
        id
        ...IncidentRow_incident
      }
      sourceIncidents {
        id
        ...IncidentRow_incident
      }
      alerts @appendNode(connections: $targetConnections, edgeTypeName: "AlertEdge") {
        id @deleteEdge(connections: $sourceConnections)
        ...AlertRow_alert
      }
      logEntries {
        id
        incident {
          id
        }
      }
      errors {
        code
        message
        field
        alertIds
      }
    }
  }
`;
