// The incidents queue with its typeahead: a pagination fragment on Query, both directions
// (usePaginationFragment's loadNext uses first/after, loadPrevious last/before).
graphql`
  fragment IncidentsQueue_query on Query
  @refetchable(queryName: "IncidentsQueuePaginationQuery")
  @argumentDefinitions(
    search: { type: "String" }
    first: { type: "Int", defaultValue: 20 }
    after: { type: "String" }
    last: { type: "Int" }
    before: { type: "String" }
  ) {
    incidents(filter: { search: $search }, first: $first, after: $after, last: $last, before: $before)
    @connection(key: "IncidentsQueue_incidents", filters: ["filter"]) {
      totalCount
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
  query IncidentsQueueQuery($search: String) {
    viewer {
      name
      canViewIncidents
    }
    ...IncidentsQueue_query @arguments(search: $search)
  }
`;
