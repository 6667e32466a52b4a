// Relay documents modelled on the console's (app/static/js/api.js). relay-compiler only compiles
// them against schema.graphql; nothing imports or runs these modules.
graphql`
  fragment IncidentRow_incident on Incident {
    id
    number
    name
    severity
    status
    alertCount
    lastActivityAt
  }
`;
