graphql`
  fragment IncidentHeader_incident on Incident @refetchable(queryName: "IncidentHeaderRefetchQuery") {
    ...IncidentRow_incident
    createdAt
    redirectIncident {
      id
      number
      name
    }
  }
`;
