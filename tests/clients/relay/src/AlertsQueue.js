graphql`
  fragment AlertsQueue_query on Query
  @refetchable(queryName: "AlertsQueuePaginationQuery")
  @argumentDefinitions(
    search: { type: "String" }
    first: { type: "Int", defaultValue: 50 }
    after: { type: "String" }
    last: { type: "Int" }
    before: { type: "String" }
  ) {
    alerts(filter: { search: $search }, first: $first, after: $after, last: $last, before: $before)
    @connection(key: "AlertsQueue_alerts", filters: ["filter"]) {
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

graphql`
  query AlertsQueueQuery($search: String) {
    ...AlertsQueue_query @arguments(search: $search)
  }
`;
