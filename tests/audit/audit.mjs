// GraphQL-over-HTTP compliance: graphql-http's auditServer against a live server.
// Usage: GRAPHQL_URL=http://127.0.0.1:8000/graphql GRAPHQL_TOKEN=igt_... node audit.mjs
// Every request carries the token: the API authenticates every GraphQL request.
import { auditServer } from 'graphql-http';

const url = process.env.GRAPHQL_URL;
const token = process.env.GRAPHQL_TOKEN;
if (!url || !token) {
  console.error('set GRAPHQL_URL and GRAPHQL_TOKEN');
  process.exit(2);
}

const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn });
let failed = 0;
for (const result of results) {
  if (result.status === 'ok') {
    console.log(`ok    ${result.name}`);
  } else {
    failed += 1;
    console.log(`${result.status.padEnd(5)} ${result.name}: ${result.reason}`);
    if (result.response) {
      console.log(`      -> ${result.response.status} ${JSON.stringify(Object.fromEntries(result.response.headers))}`);
    }
  }
}
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
