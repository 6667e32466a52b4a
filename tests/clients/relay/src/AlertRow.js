graphql`
  fragment AlertRow_alert on Alert {
    id
    number
    title
    severity
    status
    category
    detectedAt
    viewerCanLink
    incident {
      id
      number
      name
    }
  }
`;
