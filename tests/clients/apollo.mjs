// Apollo Client in Node against a live server: automatic persisted queries (PersistedQueryLink
// with node:crypto's sha256) before an HttpLink, and relayStylePagination() in the cache. Runs
// the analyst's move flow and checks the payloads, the normalized cache and what went over the
// wire. Usage: python -m tests.live -- node tests/clients/apollo.mjs
import { createHash } from 'node:crypto';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { BatchHttpLink } from '@apollo/client/link/batch-http';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { relayStylePagination } from '@apollo/client/utilities';
import { assert, ids, pickPair, recordingFetch, runSteps, typeaheadWord, url } from './flow.mjs';

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

function makeClient({ useGETForHashedQueries = false } = {}) {
  const { wire, fetchFn } = recordingFetch();
  const link = ApolloLink.from([
    new PersistedQueryLink({ sha256, useGETForHashedQueries }),
    new HttpLink({ uri: url, fetch: fetchFn }),
  ]);
  const cache = new InMemoryCache({
    possibleTypes: { Node: ['Incident', 'Alert', 'ActivityLogEntry'] },
    typePolicies: {
      Query: {
        fields: {
          incidents: relayStylePagination(['filter']),
          alerts: relayStylePagination(['filter']),
        },
      },
      Incident: {
        fields: { alerts: relayStylePagination(), activityLog: relayStylePagination() },
      },
    },
  });
  return { client: new ApolloClient({ link, cache }), wire };
}

const INCIDENT_ROW = gql`
  fragment IncidentRow on Incident {
    id
    number
    name
    severity
    status
    alertCount
    lastActivityAt
  }
`;

const VIEWER = gql`
  query Viewer {
    viewer {
      name
      canViewIncidents
    }
  }
`;

const QUEUE = gql`
  query Queue($first: Int, $after: String) {
    incidents(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { ...IncidentRow } }
    }
  }
  ${INCIDENT_ROW}
`;

// Backward paging: `last` and `before` (lands with the server's backward paging).
const QUEUE_BACKWARD = gql`
  query QueueBackward($last: Int, $before: String) {
    incidents(last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { ...IncidentRow } }
    }
  }
  ${INCIDENT_ROW}
`;

const TYPEAHEAD = gql`
  query Typeahead($search: String!) {
    incidents(filter: { search: $search }, first: 10) {
      edges { node { ...IncidentRow } }
    }
  }
  ${INCIDENT_ROW}
`;

const INCIDENT_PAGE = gql`
  query IncidentPage($id: ID!, $after: String) {
    incident(id: $id) {
      ...IncidentRow
      createdAt
      alerts(first: 2, after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { cursor node { id number title viewerCanLink incident { id } } }
      }
    }
  }
  ${INCIDENT_ROW}
`;

const BY_NUMBER = gql`
  query IncidentByNumber($number: Int!) {
    incident(number: $number) { id number }
  }
`;

const REFETCH = gql`
  query Refetch($id: ID!) {
    node(id: $id) {
      id
      ... on Incident { ...IncidentRow }
    }
  }
  ${INCIDENT_ROW}
`;

const NODES = gql`
  query Nodes($ids: [ID!]!) {
    nodes(ids: $ids) {
      id
      ... on Incident { number }
      ... on Alert { number title }
    }
  }
`;

const MOVE = gql`
  mutation MoveAlerts($alertIds: [ID!]!, $target: LinkTarget!, $comment: String!, $idempotencyKey: String) {
    linkAlerts(alertIds: $alertIds, target: $target, comment: $comment, idempotencyKey: $idempotencyKey) {
      targetIncident {
        ...IncidentRow
        alerts(first: 50) {
          totalCount
          pageInfo { hasNextPage endCursor }
          edges { cursor node { id incident { id } } }
        }
      }
      sourceIncidents { ...IncidentRow }
      alerts { id number incident { id } }
      logEntries { id kind comment incident { id } }
      errors { code message field alertIds }
    }
  }
  ${INCIDENT_ROW}
`;

const ALERT_INCIDENT = gql`
  fragment AlertIncident on Alert {
    id
    incident { id }
  }
`;

const INCIDENT_ALERTS = gql`
  fragment IncidentAlerts on Incident {
    id
    alertCount
    alerts { edges { node { id } } }
  }
`;

const { client, wire } = makeClient();
// Every page is fetched: relayStylePagination's read answers any page from the merged list.
const net = { fetchPolicy: 'network-only' };
const state = {};
const runId = `apollo-${process.pid}-${Date.now()}`; // in comments, keys and aliases

function checkMove(payload, { alertIds, targetId, comment }) {
  assert.deepEqual(payload.errors, []);
  assert.equal(payload.targetIncident.id, targetId ?? payload.targetIncident.id);
  assert.deepEqual(payload.alerts.map((a) => a.id).sort(), [...alertIds].sort());
  for (const alert of payload.alerts) assert.equal(alert.incident.id, payload.targetIncident.id);
  assert.ok(payload.logEntries.some((e) => e.incident.id === payload.targetIncident.id && e.comment === comment));
  assert.ok(payload.logEntries.some((e) => e.incident.id === state.source.id));
}

function cachedIncidentOf(alertId) {
  const alert = client.readFragment({ fragment: ALERT_INCIDENT, id: client.cache.identify({ __typename: 'Alert', id: alertId }) });
  return alert?.incident.id;
}

const steps = [
  ['viewer', async () => {
    const { data } = await client.query({ query: VIEWER });
    assert.equal(data.viewer.canViewIncidents, true);
  }],

  ['page the queue forward; relayStylePagination merges the pages', async () => {
    let after = null;
    let pages = 0;
    let info;
    do {
      const { data } = await client.query({ query: QUEUE, variables: { first: 6, after }, ...net });
      info = data.incidents.pageInfo; // the merged list's: what fetchMore would read
      after = info.endCursor;
      pages += 1;
    } while (info.hasNextPage);
    const merged = client.readQuery({ query: QUEUE, variables: { first: 6 } }).incidents;
    assert.ok(pages >= 2, 'the seeded queue should take more than one page');
    assert.equal(merged.edges.length, merged.totalCount);
    assert.equal(new Set(ids(merged)).size, merged.totalCount);
    assert.deepEqual([merged.pageInfo.hasPreviousPage, merged.pageInfo.hasNextPage], [false, false]);
    state.queue = merged.edges.map((e) => e.node);
  }],

  ['typeahead: a word of the name, then the number', async () => {
    Object.assign(state, pickPair(state.queue));
    const word = typeaheadWord(state.target.name);
    const byWord = (await client.query({ query: TYPEAHEAD, variables: { search: word }, ...net })).data.incidents;
    assert.ok(ids(byWord).includes(state.target.id), `typing "${word}" finds ${state.target.id}`);
    const search = String(state.target.number);
    const byNumber = (await client.query({ query: TYPEAHEAD, variables: { search }, ...net })).data.incidents;
    assert.equal(byNumber.edges[0]?.node.id, state.target.id, 'a typed number puts that incident first');
    const { data } = await client.query({ query: BY_NUMBER, variables: { number: state.target.number } });
    assert.equal(data.incident.id, state.target.id);
  }],

  ['open the source incident and page its alerts', async () => {
    let after = null;
    let page;
    do {
      const { data } = await client.query({ query: INCIDENT_PAGE, variables: { id: state.source.id, after }, ...net });
      page = data.incident.alerts;
      after = page.pageInfo.endCursor;
    } while (page.pageInfo.hasNextPage);
    const incident = client.readQuery({ query: INCIDENT_PAGE, variables: { id: state.source.id } }).incident;
    assert.equal(incident.alerts.edges.length, incident.alertCount);
    assert.ok(incident.alerts.edges.every((e) => e.node.viewerCanLink));
    state.alertIds = ids(incident.alerts);
  }],

  ['refetch through node(id:) and nodes(ids:)', async () => {
    const { data } = await client.query({ query: REFETCH, variables: { id: state.source.id }, ...net });
    assert.equal(data.node.__typename, 'Incident');
    assert.equal(data.node.id, state.source.id);
    assert.equal(data.node.number, state.source.number);
    const wanted = [state.target.id, state.alertIds[0]];
    const nodes = (await client.query({ query: NODES, variables: { ids: wanted }, ...net })).data.nodes;
    assert.deepEqual(nodes.map((n) => n.__typename), ['Incident', 'Alert']);
    assert.deepEqual(nodes.map((n) => n.id), wanted);
  }],

  ['linkAlerts to an existing incident, with a comment and an idempotencyKey', async () => {
    state.moved = state.alertIds.slice(0, -1);
    state.comment = `Same attacker (${runId})`;
    const variables = {
      alertIds: state.moved,
      target: { existingIncidentId: state.target.id },
      comment: state.comment,
      idempotencyKey: `${runId}-existing`,
    };
    const payload = (await client.mutate({ mutation: MOVE, variables })).data.linkAlerts;
    checkMove(payload, { alertIds: state.moved, targetId: state.target.id, comment: state.comment });
    const source = payload.sourceIncidents.find((i) => i.id === state.source.id);
    assert.equal(source.alertCount, state.alertIds.length - state.moved.length);

    // The normalized cache shows the move without a refetch.
    for (const id of state.moved) assert.equal(cachedIncidentOf(id), state.target.id);
    const target = client.readFragment({ fragment: INCIDENT_ALERTS, id: client.cache.identify({ __typename: 'Incident', id: state.target.id }) });
    for (const id of state.moved) assert.ok(ids(target.alerts).includes(id), `${id} listed under the target in the cache`);
    assert.equal(target.alertCount, payload.targetIncident.alertCount);

    // A retry with the same key answers the first result and changes nothing.
    const replay = (await client.mutate({ mutation: MOVE, variables })).data.linkAlerts;
    assert.deepEqual(replay.errors, []);
    assert.deepEqual(replay.logEntries.map((e) => e.id), payload.logEntries.map((e) => e.id));
  }],

  ['linkAlerts to a new incident (target: {createNew: true})', async () => {
    const last = state.alertIds.slice(-1);
    const comment = `Unrelated: its own incident (${runId})`;
    const variables = { alertIds: last, target: { createNew: true }, comment, idempotencyKey: `${runId}-new` };
    const payload = (await client.mutate({ mutation: MOVE, variables })).data.linkAlerts;
    checkMove(payload, { alertIds: last, comment });
    const created = payload.targetIncident;
    assert.ok(![state.source.id, state.target.id].includes(created.id));
    assert.equal(created.alertCount, 1);
    assert.equal(cachedIncidentOf(last[0]), created.id);
    const source = payload.sourceIncidents.find((i) => i.id === state.source.id);
    assert.equal(source.alertCount, 0);
    assert.equal(source.status, 'RESOLVED', 'an incident whose last alert leaves is resolved');
    // The cache's copy of the source changed with the payload.
    const { data } = await client.query({ query: REFETCH, variables: { id: state.source.id }, fetchPolicy: 'cache-only' });
    assert.equal(data.node.status, 'RESOLVED');
  }],

  ['page the queue backward into a fresh cache; same incidents, same order', async () => {
    const { client: fresh } = makeClient();
    let after = null;
    let info;
    do {
      const { data } = await fresh.query({ query: QUEUE, variables: { first: 7, after }, ...net });
      info = data.incidents.pageInfo;
      after = info.endCursor;
    } while (info.hasNextPage);
    const forward = ids(fresh.readQuery({ query: QUEUE, variables: { first: 7 } }).incidents);

    const { client: backwardClient } = makeClient();
    let before = null;
    let pages = 0;
    do {
      const { data } = await backwardClient.query({ query: QUEUE_BACKWARD, variables: { last: 7, before }, ...net });
      info = data.incidents.pageInfo;
      before = info.startCursor;
      pages += 1;
    } while (info.hasPreviousPage);
    assert.ok(pages >= 2);
    const merged = backwardClient.readQuery({ query: QUEUE_BACKWARD, variables: { last: 7 } }).incidents;
    assert.deepEqual(ids(merged), forward, 'backward pages, prepended by relayStylePagination, give the forward order');
    assert.deepEqual([merged.pageInfo.hasPreviousPage, merged.pageInfo.hasNextPage], [false, false]);
  }, 'backward'],

  ['persisted queries: registered on first use, then sent as a hash alone', async () => {
    for (const request of wire) {
      assert.ok(request.hash, `${request.operationName} was sent without a hash: the link gave up on persisted queries`);
      if (request.query) assert.equal(request.hash, sha256(request.query));
    }
    // Documents persist on the server: an alias unique to this run makes a hash it has not seen.
    const probe = gql`query ApqProbe { viewer { name ${runId.replaceAll('-', '_')}: canViewIncidents } }`;
    const start = wire.length;
    await client.query({ query: probe, ...net });
    await client.query({ query: probe, ...net });
    const sent = wire.slice(start).map((r) => [r.query ? 'hash+query' : 'hash', r.status, r.codes.join()]);
    assert.deepEqual(sent, [
      ['hash', 200, 'PERSISTED_QUERY_NOT_FOUND'],
      ['hash+query', 200, ''],
      ['hash', 200, ''],
    ]);
  }, 'apq'],

  ['persisted queries over GET (useGETForHashedQueries), cacheable by URL', async () => {
    const { client: getClient, wire: getWire } = makeClient({ useGETForHashedQueries: true });
    const probe = gql`query ApqGetProbe { viewer { ${runId.replaceAll('-', '_')}: name } }`;
    await getClient.query({ query: probe });
    await getClient.query({ query: probe, ...net });
    const sent = getWire.map((r) => [r.method, r.query ? 'hash+query' : 'hash', r.status, r.codes.join()]);
    assert.deepEqual(sent, [
      ['GET', 'hash', 200, 'PERSISTED_QUERY_NOT_FOUND'],
      ['POST', 'hash+query', 200, ''],
      ['GET', 'hash', 200, ''],
    ]);
  }, 'apq'],

  ['BatchHttpLink is refused: the server takes one operation per request', async () => {
    const { wire: batchWire, fetchFn } = recordingFetch();
    const batching = new ApolloClient({ link: new BatchHttpLink({ uri: url, fetch: fetchFn }), cache: new InMemoryCache() });
    await assert.rejects(batching.query({ query: VIEWER }));
    assert.deepEqual(batchWire.map((r) => [r.status, r.codes.join()]), [[400, 'BAD_REQUEST']]);
  }],
];

await runSteps('apollo', steps);
