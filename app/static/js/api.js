// The public GraphQL API at /graphql, as the signed-in user. Nothing else is called.

const TOKEN_KEY = "incident-graph.token";  // also read by the GraphiQL page

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(message, { status, code } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Runs one operation; throws ApiError on HTTP or GraphQL errors, returns `data` otherwise. */
export async function graphql(query, variables = {}, { bearer = token.get() } = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("The server cannot be reached. Check that it is running, then retry.");
  }
  const body = await response.json().catch(() => null);
  const first = body?.errors?.[0];
  if (!response.ok || !body?.data || first) {
    const message = first?.message ?? `The server answered ${response.status} ${response.statusText}.`;
    throw new ApiError(message, { status: response.status, code: first?.extensions?.code });
  }
  return body.data;
}

/** The demo user's token when the server runs with --demo, else null. */
export async function demoToken() {
  const response = await fetch("/demo.json").catch(() => null);
  return response?.ok ? (await response.json()).token ?? null : null;
}

const PAGE = "pageInfo { hasNextPage endCursor } totalCount";
const ALERT = "id number title severity status category detectedAt viewerCanLink incident { id number name }";
const INCIDENT = "id number name severity status alertCount lastActivityAt";

export const VIEWER = "query Viewer { viewer { name canViewIncidents } }";

export const INCIDENTS = `query Incidents($search: String, $first: Int = 20, $after: String) {
  incidents(filter: { search: $search }, first: $first, after: $after) {
    ${PAGE} edges { node { ${INCIDENT} } }
  }
}`;

export const INCIDENT_PAGE = `query Incident($number: Int!) {
  incident(number: $number) { ${INCIDENT} createdAt redirectIncident { id number name } }
}`;

export const INCIDENT_ID = `query IncidentId($number: Int!) { incident(number: $number) { id number name } }`;

export const INCIDENT_ALERTS = `query IncidentAlerts($id: ID!, $after: String) {
  incident(id: $id) { id alerts(first: 100, after: $after) { ${PAGE} edges { node { ${ALERT} } } } }
}`;

export const ACTIVITY_LOG = `query ActivityLog($id: ID!, $after: String) {
  incident(id: $id) {
    id
    activityLog(first: 50, after: $after) {
      ${PAGE}
      edges { node {
        id kind createdAt actor message comment
        alert { id number title }
        otherIncident { id number name }
      } }
    }
  }
}`;

export const ALERTS = `query Alerts($search: String, $after: String) {
  alerts(filter: { search: $search }, first: 50, after: $after) {
    ${PAGE} edges { node { ${ALERT} } }
  }
}`;

export const ALERT_DETAILS = `query Alert($number: Int!) {
  alert(number: $number) { ${ALERT} externalId scope entities { kind value } }
}`;

export const LINK_ALERTS = `mutation LinkAlerts($alertIds: [ID!]!, $target: LinkTarget!, $comment: String!) {
  linkAlerts(alertIds: $alertIds, target: $target, comment: $comment) {
    targetIncident { id number name }
    logEntries { id incident { id } }
    errors { code message field alertIds }
  }
}`;
