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

/**
 * A key for one panel's Save: the server acts on the first request that carries it, and answers a
 * retry (the same key and input, after an answer was lost) with that first result.
 */
export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; getRandomValues does not (a console served over plain http).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// What a panel shows when the server says its key was used before with other values: an earlier
// Save from the same panel, whose answer was lost, may have been applied.
export const KEY_REUSED = "An earlier Save from this panel, with other values, may have been applied. " +
  "Close the panel and check the activity log before saving again.";

/** The demo user's token when the server runs with --demo, else null. */
export async function demoToken() {
  const response = await fetch("/demo.json").catch(() => null);
  return response?.ok ? (await response.json()).token ?? null : null;
}

const PAGE = "pageInfo { hasNextPage endCursor } totalCount";
const ALERT = "id number title severity status category detectedAt viewerCanLink incident { id number name }";
const INCIDENT = "id number name severity status alertCount lastActivityAt assignedTo";

export const VIEWER = "query Viewer { viewer { name canViewIncidents grants { scope access } } }";

// The typeahead of the move panel: its search only, with the evidence each incident matched by.
export const INCIDENTS = `query Incidents($search: String, $first: Int = 20, $after: String) {
  incidents(filter: { search: $search }, first: $first, after: $after) {
    ${PAGE} edges { node { ${INCIDENT} matchedEvidence { kind value } } }
  }
}`;

// The queue, with its filters and sort (the state in the URL).
export const QUEUE = `query Queue($filter: IncidentFilter, $sort: IncidentSort!, $first: Int = 20, $after: String) {
  incidents(filter: $filter, sort: $sort, first: $first, after: $after) {
    ${PAGE} edges { node { ${INCIDENT} matchedEvidence { kind value } } }
  }
}`;

export const INCIDENT_PAGE = `query Incident($number: Int!) {
  incident(number: $number) {
    ${INCIDENT} createdAt classification determination viewerCanUpdate redirectIncident { id number name }
  }
}`;

export const UPDATE_INCIDENT = `mutation UpdateIncident($id: ID!, $status: IncidentStatus, $assignedTo: String,
    $classification: Classification, $determination: Determination, $comment: String, $idempotencyKey: String) {
  updateIncident(id: $id, status: $status, assignedTo: $assignedTo, classification: $classification,
      determination: $determination, comment: $comment, idempotencyKey: $idempotencyKey) {
    incident { id status assignedTo classification determination }
    logEntries { id }
    errors { code message field }
  }
}`;

export const ASSIGN_INCIDENT = `mutation AssignIncident($id: ID!, $assignedTo: String, $idempotencyKey: String) {
  updateIncident(id: $id, assignedTo: $assignedTo, idempotencyKey: $idempotencyKey) {
    incident { id assignedTo }
    logEntries { id }
    errors { code message field }
  }
}`;

export const ADD_COMMENT = `mutation AddComment($incidentId: ID!, $text: String!, $idempotencyKey: String) {
  addComment(incidentId: $incidentId, text: $text, idempotencyKey: $idempotencyKey) {
    logEntry { id }
    errors { code message field }
  }
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
        id kind createdAt actor message comment oldStatus newStatus oldAssignee newAssignee
        oldClassification newClassification oldDetermination newDetermination
        alert { id number title }
        otherIncident { id number name }
        move { id number kind }
      } }
    }
  }
}`;

export const INCIDENT_MOVES = `query IncidentMoves($id: ID!, $after: String) {
  incident(id: $id) {
    id
    moves(first: 50, after: $after) {
      ${PAGE}
      edges { node { id number kind actor createdAt alertCount viewerCanRevert revertedBy { id number kind } } }
    }
  }
}`;

export const ALERT_HISTORY = `query AlertHistory($number: Int!) {
  alert(number: $number) { id history { at incident { id number name } move { id number kind } } }
}`;

export const ALERTS = `query Alerts($search: String, $after: String) {
  alerts(filter: { search: $search }, first: 50, after: $after) {
    ${PAGE} edges { node { ${ALERT} } }
  }
}`;

export const ALERT_DETAILS = `query Alert($number: Int!) {
  alert(number: $number) { ${ALERT} externalId scope entities { kind value } }
}`;

// What the confirmation of a move, a merge or an undo needs to offer Undo.
const MOVE = "id number kind comment alertCount viewerCanRevert";

export const LINK_ALERTS = `mutation LinkAlerts($alertIds: [ID!]!, $target: LinkTarget!, $comment: String!,
    $idempotencyKey: String) {
  linkAlerts(alertIds: $alertIds, target: $target, comment: $comment, idempotencyKey: $idempotencyKey) {
    targetIncident { id number name }
    logEntries { id incident { id } }
    move { ${MOVE} }
    errors { code message field alertIds }
  }
}`;

export const MERGE_INCIDENTS = `mutation MergeIncidents($incidentIds: [ID!]!, $targetIncidentId: ID, $comment: String!,
    $reasons: [MergeReason!], $idempotencyKey: String) {
  mergeIncidents(incidentIds: $incidentIds, targetIncidentId: $targetIncidentId, comment: $comment,
      reasons: $reasons, idempotencyKey: $idempotencyKey) {
    target { id number name }
    sources { id number name }
    logEntries { id incident { id } }
    move { ${MOVE} }
    errors { code message field incidentIds }
  }
}`;

export const REVERT_MOVE = `mutation RevertMove($moveId: ID!, $comment: String!, $idempotencyKey: String) {
  revertMove(moveId: $moveId, comment: $comment, idempotencyKey: $idempotencyKey) {
    move { ${MOVE} }
    reverted { id number }
    incidents { id number name }
    alerts { id }
    errors { code message field alertIds moveIds incidentIds }
  }
}`;

const MOVE_LINK = "id number kind";

export const MOVE_PAGE = `query Move($number: Int!) {
  move(number: $number) {
    ${MOVE} actor createdAt reasons
    target { id number name }
    sources { id number name }
    reverts { ${MOVE_LINK} }
    revertedBy { ${MOVE_LINK} }
  }
}`;

export const MOVE_ITEMS = `query MoveItems($number: Int!, $after: String) {
  move(number: $number) {
    id
    items(first: 50, after: $after) {
      ${PAGE}
      edges { node { alert { id number title } from { id number name } to { id number name } } }
    }
  }
}`;

// Names for what an error's ids point at, so that the console can link them.
export const NAMED_NODES = `query NamedNodes($ids: [ID!]!) {
  nodes(ids: $ids) {
    id
    ... on Alert { number title }
    ... on Incident { number name }
    ... on Move { number kind }
  }
}`;

// Live updates: incidentChanges over graphql-sse's distinct connections mode (a POST answered with
// an event stream; EventSource cannot send the token).
export const INCIDENT_CHANGES = `subscription IncidentChanges($ids: [ID!]) {
  incidentChanges(incidentIds: $ids) {
    cursor
    incident { ${INCIDENT} }
    entries {
      id kind createdAt actor message comment
      alert { id number title }
      otherIncident { id number name }
      move { id number kind }
    }
  }
}`;

/**
 * Calls onChange(change) for every IncidentChange until close() is called; reconnects after a
 * dropped stream (resuming from the last cursor, so nothing is missed) unless the server refused.
 */
export function subscribe(variables, onChange) {
  const controller = new AbortController();
  let after = null;
  let closed = false;
  const run = async () => {
    while (!closed) {
      try {
        const response = await fetch("/graphql", {
          method: "POST",
          signal: controller.signal,
          headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${token.get()}` },
          body: JSON.stringify({ query: INCIDENT_CHANGES, variables: { ...variables, ...(after && { after }) } }),
        });
        if (!response.ok) return;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
            const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("");
            if (!block.includes("event: next") || !data) continue;
            const result = JSON.parse(data);
            const code = result.errors?.[0]?.extensions?.code;
            if (code && !result.errors[0].extensions.retryable) return;  // refused: not retried
            const change = result.data?.incidentChanges;
            if (change) {
              after = change.cursor;
              onChange(change);
            }
          }
        }
      } catch {
        if (closed) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  run();
  return () => {
    closed = true;
    controller.abort();
  };
}
