// An incident's Activity log tab, newest first; loadPrevious pages toward the newest entries.
graphql`
  fragment ActivityLog_incident on Incident
  @refetchable(queryName: "ActivityLogPaginationQuery")
  @argumentDefinitions(
    first: { type: "Int", defaultValue: 50 }
    after: { type: "String" }
    last: { type: "Int" }
    before: { type: "String" }
  ) {
    activityLog(first: $first, after: $after, last: $last, before: $before)
    @connection(key: "ActivityLog_activityLog") {
      edges {
        node {
          id
          kind
          createdAt
          actor
          message
          comment
          alert {
            id
            title
          }
          otherIncident {
            id
            number
            name
          }
        }
      }
    }
  }
`;
