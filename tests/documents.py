"""GraphQL documents that tests and the benchmark both send."""

# An incident page: the incident, its first 50 alerts with evidence, its first 50 log entries.
DETAIL = """
query($id: ID!) {
  incident(id: $id) {
    id name severity status alertCount lastActivityAt
    alerts(first: 50) { totalCount edges { cursor node {
      id title severity status category scope detectedAt viewerCanLink
      entities { kind value } incident { id name }
    } } pageInfo { hasNextPage endCursor } }
    activityLog(first: 50) { totalCount edges { node {
      id kind createdAt actor message comment
      alert { id title } otherIncident { id name } incident { id }
    } } }
  }
}
"""
