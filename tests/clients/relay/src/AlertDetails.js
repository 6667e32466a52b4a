// An alert's details, refetchable on its own: @refetchable on a Node type refetches through
// node(id:).
graphql`
  fragment AlertDetails_alert on Alert @refetchable(queryName: "AlertDetailsRefetchQuery") {
    ...AlertRow_alert
    externalId
    scope
    entities {
      kind
      value
    }
  }
`;
