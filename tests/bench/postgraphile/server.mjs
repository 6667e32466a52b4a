// PostGraphile for the benchmark (tests/bench/postgraphile.py starts it): the Amber preset over
// the bench's SQL functions (typeahead.sql), JWTs verified by PostGraphile's PgLazyJWTPreset
// (HS256, audience "postgraphile"; each claim becomes the setting jwt.claims.<claim>), as its
// documentation sets a server up. No GraphiQL, no watch mode, no explain.
//
//   DATABASE_URL=... JWT_SECRET=... PORT=... PROCESSES=1 node server.mjs
import cluster from "node:cluster";
import { createServer } from "node:http";

import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { PgLazyJWTPreset } from "postgraphile/presets/lazy-jwt";

const { DATABASE_URL, JWT_SECRET, PORT } = process.env;
const PROCESSES = Number(process.env.PROCESSES || 1);

if (cluster.isPrimary && PROCESSES > 1) {
  for (let n = 0; n < PROCESSES; n++) cluster.fork();
  cluster.on("exit", (worker, code) => {
    console.error(`postgraphile worker ${worker.process.pid} exited (${code})`);
    process.exit(1);
  });
} else {
  const preset = {
    extends: [PostGraphileAmberPreset, PgLazyJWTPreset],
    pgServices: [
      makePgService({
        connectionString: DATABASE_URL,
        schemas: ["postgraphile_bench"],
        // As our server's pool: custom plans (app/db.py), no JIT, 10 connections.
        poolConfig: { max: 10, options: "-c plan_cache_mode=force_custom_plan -c jit=off" },
      }),
    ],
    grafserv: { port: Number(PORT), graphqlPath: "/graphql", graphiql: false, watch: false, pgJwtSecret: JWT_SECRET },
    grafast: { explain: false },
  };
  const pgl = postgraphile(preset);
  const serv = pgl.createServ(grafserv);
  const server = createServer();
  server.on("error", (e) => {
    console.error(e);
    process.exit(1);
  });
  await serv.addTo(server);
  await pgl.getSchema(); // built before the first request, not during it
  server.listen(Number(PORT), "127.0.0.1", () => console.error(`postgraphile listening on ${PORT}`));
  // An orderly exit on SIGTERM, so that `node --cpu-prof` (tests/bench/profile.py) writes its profile.
  process.on("SIGTERM", () => process.exit(0));
}
