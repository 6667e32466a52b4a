graphql`
  query IncidentPageQuery($id: ID!) {
    incident(id: $id) {
      id
      ...IncidentHeader_incident
      ...IncidentAlerts_incident
      ...ActivityLog_incident
    }
  }
`;

// A ticket names an incident by number.
graphql`
  query IncidentPageByNumberQuery($number: Int!) {
    incident(number: $number) {
      id
      ...IncidentHeader_incident
    }
  }
`;
