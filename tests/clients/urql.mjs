// urql's core client in Node against a live server: the move flow, shorter than Apollo's.
// Usage: python -m tests.live -- node tests/clients/urql.mjs
import { Client, cacheExchange, fetchExchange, gql } from '@urql/core';
import { assert, ids, pickPair, recordingFetch, runSteps, typeaheadWord, url } from './flow.mjs';

const { fetchFn } = recordingFetch();
const client = new Client({ url, fetch: fetchFn, exchanges: [cacheExchange, fetchExchange], requestPolicy: 'network-only' });

/** The operation's data; a GraphQL or network error fails the step. */
async function run(operation) {
  const result = await operation.toPromise();
  if (result.error) throw result.error;
  return result.data;
}
const query = (document, variables) => run(client.query(document, variables));
const mutate = (document, variables) => run(client.mutation(document, variables));

const INCIDENT_ROW = gql`
  fragment IncidentRow on Incident {
    id
    number
    name
    status
    alertCount
  }
`;

const QUEUE = gql`
  query Queue($first: Int, $after: String, $search: String) {
    incidents(filter: { search: $search }, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { node { ...IncidentRow } }
    }
  }
  ${INCIDENT_ROW}
`;

const QUEUE_BACKWARD = gql`
  query QueueBackward($last: Int, $before: String) {
    incidents(last: $last, before: $before) {
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { node { id } }
    }
  }
`;

const INCIDENT = gql`
  query Incident($id: ID!) {
    incident(id: $id) {
      ...IncidentRow
      alerts(first: 50) { edges { node { id viewerCanLink } } }
    }
  }
  ${INCIDENT_ROW}
`;

const REFETCH = gql`
  query Refetch($id: ID!) {
    node(id: $id) { id ... on Incident { ...IncidentRow } }
  }
  ${INCIDENT_ROW}
`;

const MOVE = gql`
  mutation MoveAlerts($alertIds: [ID!]!, $target: LinkTarget!, $comment: String!, $idempotencyKey: String) {
    linkAlerts(alertIds: $alertIds, target: $target, comment: $comment, idempotencyKey: $idempotencyKey) {
      targetIncident { ...IncidentRow }
      sourceIncidents { ...IncidentRow }
      alerts { id incident { id } }
      logEntries { id comment incident { id } }
      errors { code message field alertIds }
    }
  }
  ${INCIDENT_ROW}
`;

const state = {};
const runId = `urql-${process.pid}-${Date.now()}`;

const steps = [
  ['page the queue forward', async () => {
    state.queue = [];
    let after = null;
    let info;
    do {
      const { incidents } = await query(QUEUE, { first: 8, after });
      assert.equal(incidents.pageInfo.hasPreviousPage, after !== null);
      state.queue.push(...incidents.edges.map((e) => e.node));
      info = incidents.pageInfo;
      after = info.endCursor;
    } while (info.hasNextPage);
    assert.equal(new Set(state.queue.map((i) => i.id)).size, state.queue.length);
  }],

  ['typeahead', async () => {
    Object.assign(state, pickPair(state.queue));
    const { incidents } = await query(QUEUE, { search: typeaheadWord(state.target.name), first: 10 });
    assert.ok(ids(incidents).includes(state.target.id));
  }],

  ['open the source incident, refetch it through node(id:)', async () => {
    const { incident } = await query(INCIDENT, { id: state.source.id });
    assert.ok(incident.alerts.edges.every((e) => e.node.viewerCanLink));
    state.alertIds = ids(incident.alerts);
    assert.equal(state.alertIds.length, incident.alertCount);
    const { node } = await query(REFETCH, { id: state.source.id });
    assert.equal(node.__typename, 'Incident');
    assert.deepEqual([node.id, node.number, node.name], [incident.id, incident.number, incident.name]);
  }],

  ['linkAlerts to an existing incident, then the last alert to a new one', async () => {
    const moved = state.alertIds.slice(0, -1);
    const comment = `Same attacker (${runId})`;
    const toExisting = (await mutate(MOVE, {
      alertIds: moved,
      target: { existingIncidentId: state.target.id },
      comment,
      idempotencyKey: `${runId}-existing`,
    })).linkAlerts;
    assert.deepEqual(toExisting.errors, []);
    assert.equal(toExisting.targetIncident.id, state.target.id);
    assert.ok(toExisting.alerts.every((a) => a.incident.id === state.target.id));
    assert.ok(toExisting.logEntries.some((e) => e.comment === comment));

    const toNew = (await mutate(MOVE, {
      alertIds: state.alertIds.slice(-1),
      target: { createNew: true },
      comment: `Unrelated (${runId})`,
      idempotencyKey: `${runId}-new`,
    })).linkAlerts;
    assert.deepEqual(toNew.errors, []);
    assert.ok(![state.source.id, state.target.id].includes(toNew.targetIncident.id));
    assert.deepEqual(toNew.sourceIncidents.map((i) => [i.id, i.status, i.alertCount]), [[state.source.id, 'RESOLVED', 0]]);

    const { incident } = await query(INCIDENT, { id: state.target.id });
    for (const id of moved) assert.ok(ids(incident.alerts).includes(id));
  }],

  ['page the queue backward: the same incidents in the same order', async () => {
    const forward = [];
    let after = null;
    let info;
    do {
      const { incidents } = await query(QUEUE, { first: 8, after });
      forward.push(...ids(incidents));
      info = incidents.pageInfo;
      after = info.endCursor;
    } while (info.hasNextPage);
    const backward = [];
    let before = null;
    do {
      const { incidents } = await query(QUEUE_BACKWARD, { last: 8, before });
      if (before === null) assert.equal(incidents.pageInfo.hasNextPage, false, 'the last page has nothing after it');
      backward.unshift(...ids(incidents));
      info = incidents.pageInfo;
      before = info.startCursor;
    } while (info.hasPreviousPage);
    assert.deepEqual(backward, forward);
  }, 'backward'],
];

await runSteps('urql', steps);
