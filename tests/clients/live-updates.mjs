// Live updates with the npm clients: graphql-ws (graphql-transport-ws over a WebSocket, the token in
// connection_init) and graphql-sse (distinct connections mode, the token in a header). Each
// subscribes to the queue, sees a move made over HTTP, then resumes from a cursor.
// Usage: python -m tests.live -- node tests/clients/live-updates.mjs
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';
import { assert, runSteps, token, url } from './flow.mjs';

const CHANGES = `
  subscription Changes($ids: [ID!], $after: String) {
    incidentChanges(incidentIds: $ids, after: $after) {
      cursor
      incident { id alertCount updatedAt }
      entries { kind message }
    }
  }
`;

async function post(query, variables) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

/** An alert of an incident holding two or more, to move out to a new incident. */
async function anAlertToMove() {
  const data = await post(`{ incidents(first: 50) { edges { node { id alertCount alerts(first: 1) { edges { node { id } } } } } } }`);
  const incident = data.incidents.edges.map((e) => e.node).find((i) => i.alertCount >= 2);
  assert.ok(incident, 'the seeded data holds an incident of two alerts or more');
  return { incident: incident.id, alert: incident.alerts.edges[0].node.id };
}

async function moveToNew(alert) {
  const data = await post(
    `mutation($ids: [ID!]!) { linkAlerts(alertIds: $ids, target: { createNew: true }, comment: "live updates check") {
       targetIncident { id } errors { code message } } }`,
    { ids: [alert] },
  );
  assert.deepEqual(data.linkAlerts.errors, []);
  return data.linkAlerts.targetIncident.id;
}

/** Subscribes with `subscribe(sink)`, collects `count` events, then unsubscribes. */
function collect(subscribe, count) {
  return new Promise((resolve, reject) => {
    const events = [];
    const unsubscribe = subscribe({
      next: (result) => {
        if (result.errors) reject(new Error(JSON.stringify(result.errors)));
        events.push(result.data.incidentChanges);
        if (events.length === count) {
          unsubscribe();
          resolve(events);
        }
      },
      error: reject,
      complete: () => {},
    });
  });
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

/** A move's two changes (the incident left, the new one) through `client`, then a resume from the first. */
async function flow(client) {
  const { incident, alert } = await anAlertToMove();
  const live = collect((sink) => client.subscribe({ query: CHANGES }, sink), 2);
  await settle(); // the subscription is open before the move
  const created = await moveToNew(alert);
  const events = await live;
  assert.deepEqual(new Set(events.map((e) => e.incident.id)), new Set([incident, created]));
  const left = events.find((e) => e.incident.id === incident);
  assert.deepEqual(left.entries.map((e) => e.kind), ['ALERT_UNLINKED']);

  // Resuming after the first change gives the second, and the live ones after it.
  const resumed = collect((sink) => client.subscribe({ query: CHANGES, variables: { after: events[0].cursor } }, sink), 1);
  const [again] = await resumed;
  assert.equal(again.cursor, events[1].cursor);

  // Following one incident: the move back reaches it.
  const followed = collect((sink) => client.subscribe({ query: CHANGES, variables: { ids: [incident] } }, sink), 1);
  await settle();
  const back = await post(
    `mutation($ids: [ID!]!, $to: ID!) { linkAlerts(alertIds: $ids, target: { existingIncidentId: $to }, comment: "back") {
       errors { code } } }`,
    { ids: [alert], to: incident },
  );
  assert.deepEqual(back.linkAlerts.errors, []);
  const [returned] = await followed;
  assert.equal(returned.incident.id, incident);
  assert.deepEqual(returned.entries.map((e) => e.kind), ['ALERT_LINKED']);
}

const wsClient = createWsClient({
  url: url.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  lazy: true,
  retryAttempts: 0,
});
const sseClient = createSseClient({ url, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });

await runSteps('live updates', [
  ['graphql-ws: a move, a resume, one incident followed', () => flow(wsClient)],
  ['graphql-sse: a move, a resume, one incident followed', () => flow(sseClient)],
  [
    'graphql-ws: a bad token is refused at connection_init (4403)',
    () =>
      new Promise((resolve, reject) => {
        const refused = createWsClient({
          url: url.replace(/^http/, 'ws'),
          webSocketImpl: WebSocket,
          connectionParams: { authorization: 'Bearer nope' },
          retryAttempts: 0,
        });
        refused.subscribe({ query: CHANGES }, {
          next: () => reject(new Error('received an event')),
          error: (event) => {
            try {
              assert.equal(event.code, 4403);
              resolve();
            } catch (error) {
              reject(error);
            }
          },
          complete: () => reject(new Error('completed')),
        });
      }),
  ],
]);
await wsClient.dispose();
sseClient.dispose();
