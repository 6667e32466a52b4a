// An incident's Alerts tab: a pagination fragment on Incident, refetched through node(id:).
graphql`
  fragment IncidentAlerts_incident on Incident
  @refetchable(queryName: "IncidentAlertsPaginationQuery")
  @argumentDefinitions(
    first: { type: "Int", defaultValue: 100 }
    after: { type: "String" }
    last: { type: "Int" }
    before: { type: "String" }
  ) {
    alerts(first: $first, after: $after, last: $last, before: $before) @connection(key: "IncidentAlerts_alerts") {
      totalCount
      edges {
        node {
          id
          ...AlertRow_alert
        }
      }
    }
  }
`;
