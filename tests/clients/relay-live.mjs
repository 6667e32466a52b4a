// Relay's compiled documents on the live server. relay-compiler (compile.sh) wrote the operations'
// text to relay/__generated__/persisted-documents.json under their sha256 ids. Each runs as a Relay
// app with persisted artifacts sends it: by id alone (`documentId`, GraphQL over HTTP's persisted
// documents, docs/persisted-documents.md). An id the server does not hold yet is registered once
// through Apollo's protocol (the id with the text), as a deploy step would. The variables are the
// ones Relay's hooks send: its pagination queries set the other direction's arguments to null.
// Usage: python -m tests.live -- node tests/clients/relay-live.mjs
import { readFileSync } from 'node:fs';
import { assert, recordingFetch, runSteps, url } from './flow.mjs';

const manifest = JSON.parse(readFileSync(new URL('./relay/__generated__/persisted-documents.json', import.meta.url)));
const byName = Object.fromEntries(
  Object.entries(manifest).map(([id, text]) => [text.match(/^(?:query|mutation) (\w+)/)[1], { id, text }]),
);
const { fetchFn } = recordingFetch();

async function post(body) {
  const response = await fetchFn(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** Runs a compiled operation by its id, registering its text first if the server asks for it. */
async function run(name, variables) {
  const { id, text } = byName[name];
  const byId = { operationName: name, variables, documentId: `sha256:${id}` };
  let answer = await post(byId);
  if (answer.body.errors?.[0]?.extensions?.code === 'PERSISTED_QUERY_NOT_FOUND') {
    const extensions = { persistedQuery: { version: 1, sha256Hash: id } };
    const registered = await post({ operationName: name, variables, query: text, extensions });
    assert.equal(registered.status, 200, JSON.stringify(registered.body));
    answer = await post(byId);
  }
  assert.deepEqual([answer.status, answer.body.errors], [200, undefined], `${name}: ${JSON.stringify(answer.body)}`);
  return answer.body.data;
}

const ids = (connection) => connection.edges.map((e) => e.node.id);
const forward = (first, after = null) => ({ first, after, last: null, before: null });
const backward = (last, before = null) => ({ first: null, after: null, last, before });
const seen = new Set();
const once = (name) => (seen.add(name), name);
const state = {};

const steps = [
  ['the incidents queue, forward then backward (IncidentsQueuePaginationQuery)', async () => {
    const root = await run(once('IncidentsQueueQuery'), { search: null });
    state.incident = root.incidents.edges[0].node;
    const name = once('IncidentsQueuePaginationQuery');
    const page1 = (await run(name, { search: null, ...forward(5) })).incidents;
    const page2 = (await run(name, { search: null, ...forward(5, page1.pageInfo.endCursor) })).incidents;
    const back = (await run(name, { search: null, ...backward(5, page2.pageInfo.startCursor) })).incidents;
    assert.deepEqual(ids(back), ids(page1));
    assert.deepEqual([back.pageInfo.hasPreviousPage, back.pageInfo.hasNextPage], [false, true]);
  }],

  ['the alerts queue, forward then backward (AlertsQueuePaginationQuery)', async () => {
    const root = await run(once('AlertsQueueQuery'), { search: null });
    state.alert = root.alerts.edges[0].node;
    const name = once('AlertsQueuePaginationQuery');
    const page1 = (await run(name, { search: null, ...forward(4) })).alerts;
    const page2 = (await run(name, { search: null, ...forward(4, page1.pageInfo.endCursor) })).alerts;
    const back = (await run(name, { search: null, ...backward(4, page2.pageInfo.startCursor) })).alerts;
    assert.deepEqual(ids(back), ids(page1));
  }],

  ['an incident page, by id and by number', async () => {
    const { id } = state.incident;
    const page = (await run(once('IncidentPageQuery'), { id })).incident;
    assert.equal(page.id, id);
    const byNumber = (await run(once('IncidentPageByNumberQuery'), { number: page.number })).incident;
    assert.equal(byNumber.id, id);
  }],

  ['@refetchable through node(id:): header, alert details, paginated alerts and activity log', async () => {
    const { id } = state.incident;
    assert.equal((await run(once('IncidentHeaderRefetchQuery'), { id })).node.id, id);
    assert.equal((await run(once('AlertDetailsRefetchQuery'), { id: state.alert.id })).node.id, state.alert.id);
    for (const name of ['IncidentAlertsPaginationQuery', 'ActivityLogPaginationQuery']) {
      once(name);
      const last = (await run(name, { id, ...backward(1) })).node;
      const list = last.alerts ?? last.activityLog;
      assert.equal(list.edges.length, 1, name);
      assert.equal(list.pageInfo.hasNextPage, false, `${name}: the last item has none after it`);
      const first = (await run(name, { id, ...forward(1) })).node;
      assert.equal((first.alerts ?? first.activityLog).edges.length, 1, name);
    }
  }],

  ['the move panel: typeahead, and linkAlerts refusing an unknown alert', async () => {
    const word = state.incident.name.split(/\s+/).reduce((a, b) => (b.length > a.length ? b : a));
    const found = (await run(once('MovePanelTypeaheadQuery'), { search: word })).incidents;
    assert.ok(ids(found).includes(state.incident.id));
    // Relay's client-only $sourceConnections/$targetConnections are not in the text it sends.
    const payload = (await run(once('MovePanelLinkAlertsMutation'), {
      alertIds: ['alert_999999999'],
      target: { existingIncidentId: state.incident.id },
      comment: 'Relay document check',
    })).linkAlerts;
    assert.deepEqual(payload.errors.map((e) => e.code), ['ALERT_NOT_FOUND']);
  }],

  ['every operation Relay compiled was run', async () => {
    assert.deepEqual(Object.keys(byName).filter((name) => !seen.has(name)), []);
  }],
];

await runSteps('relay documents', steps);
