// What the Node scripts (apollo.mjs, urql.mjs, relay-live.mjs) share: the live server's address, a
// fetch that signs every request and records what went over the wire, the steps' runner, and how
// the move flow picks its incidents. Each client sends its own documents through its own API.
import assert from 'node:assert/strict';

export const url = process.env.GRAPHQL_URL;
export const token = process.env.GRAPHQL_TOKEN;
if (!url || !token) {
  console.error('set GRAPHQL_URL and GRAPHQL_TOKEN (python -m tests.live -- COMMAND does)');
  process.exit(2);
}

/** A fetch that adds the bearer token and keeps, per request, what was sent and answered. */
export function recordingFetch() {
  const wire = [];
  const fetchFn = async (input, init = {}) => {
    const headers = new Headers(init.headers || {});
    headers.set('authorization', `Bearer ${token}`);
    const method = (init.method || 'GET').toUpperCase();
    const sent = method === 'GET' ? fromSearchParams(new URL(String(input)).searchParams) : JSON.parse(init.body);
    const response = await fetch(input, { ...init, headers });
    const answer = await response.clone().json().catch(() => null);
    wire.push({
      method,
      operationName: sent.operationName,
      query: sent.query,
      hash: sent.extensions?.persistedQuery?.sha256Hash,
      status: response.status,
      codes: (answer?.errors || []).map((e) => e.extensions?.code),
    });
    return response;
  };
  return { wire, fetchFn };
}

function fromSearchParams(params) {
  const json = (name) => (params.has(name) ? JSON.parse(params.get(name)) : undefined);
  return {
    operationName: params.get('operationName') ?? undefined,
    query: params.get('query') ?? undefined,
    extensions: json('extensions'),
  };
}

const STEP_SECONDS = 30;

// Steps name the server feature they need, if any; CLIENTS_SKIP=backward,apq skips those (for
// working against a server that lacks one; CI sets nothing and runs every step).
const skipped = new Set((process.env.CLIENTS_SKIP || '').split(',').filter(Boolean));

/** Runs [name, step, needs?] in order, one line each; exits non-zero on the first failure. */
export async function runSteps(client, steps) {
  let passed = 0;
  let skips = 0;
  for (const [name, step, needs] of steps) {
    if (needs && skipped.has(needs)) {
      skips += 1;
      console.log(`skip  ${client}: ${name} (CLIENTS_SKIP has ${needs})`);
      continue;
    }
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${STEP_SECONDS} s`)), STEP_SECONDS * 1000);
    });
    try {
      await Promise.race([step(), timeout]);
      passed += 1;
      console.log(`ok    ${client}: ${name}`);
    } catch (error) {
      console.log(`FAIL  ${client}: ${name}`);
      console.log(error?.stack || error);
      if (error?.errors) console.log(JSON.stringify(error.errors, null, 2));
      console.log(`${client}: ${passed} passed, 1 failed`);
      process.exit(1);
    } finally {
      clearTimeout(timer);
    }
  }
  console.log(`${client}: ${passed} passed, 0 failed${skips ? `, ${skips} skipped` : ''}`);
}

/**
 * A source incident whose alerts will move and a target for them, from a page of the queue: both
 * active, the source with at least two alerts. The clients share one live server and run one
 * after the other; each empties its source (which resolves it), so the next one picks another.
 */
export function pickPair(incidents) {
  const active = incidents.filter((i) => i.status === 'ACTIVE');
  const source = active.find((i) => i.alertCount >= 2);
  assert.ok(source, 'no active incident with two alerts or more');
  const target = active.find((i) => i.id !== source.id);
  assert.ok(target, 'no second active incident to move alerts to');
  return { source, target };
}

/** The longest word of an incident's name: what an analyst types into the typeahead. */
export function typeaheadWord(name) {
  return name.split(/\s+/).reduce((a, b) => (b.length > a.length ? b : a), '');
}

export const ids = (connection) => connection.edges.map((e) => e.node.id);

export { assert };
