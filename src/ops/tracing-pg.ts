/**
 * Database spans from @opentelemetry/instrumentation-pg: one per query (`db.query.text` is the SQL with
 * its literals blanked out, and bind values are never recorded), plus the wait for a pooled connection,
 * as children of the RPC span.
 *
 * The instrumentation patches `pg` as it is required, which assumes it starts before anything loads pg.
 * Here pg was loaded long before (by the pool and by MikroORM, which has a copy of its own), so each copy is
 * required once more through the instrumentation's hook: that patches the loaded module in place
 * (`Client.prototype.query`, the pool's `connect`), which covers every client, existing or future.
 */
import { createRequire } from "node:module";
import { ProxyTracerProvider, type TracerProvider } from "@opentelemetry/api";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";

// String literals (plain, E'' with backslash escapes, B''/X''/N''/U&''), dollar-quoted bodies and numbers;
// not $1 placeholders, nor digits inside identifiers or double-quoted names.
const LITERALS =
  /\$(\w*)\$[\s\S]*?\$\1\$|(?<![\w$])[Ee]'(?:[^'\\]|\\[\s\S]|'')*'|(?:(?<![\w$])(?:[BbXxNn]|[Uu]&))?'(?:[^']|'')*'|"(?:[^"]|"")*"|(?<![\w$.])\d+(?:\.\d+)?(?:[Ee][+-]?\d+)?\b/g;

/**
 * The SQL with every literal replaced by `?`. MikroORM inlines values into the statements it sends (emails,
 * password and token hashes), and the query text goes to whoever runs the tracing backend.
 */
export function withoutLiterals(sql: string): string {
  return sql.replace(LITERALS, (literal) => (literal.startsWith('"') ? literal : "?"));
}

/** The packages that import pg, each of which may resolve its own copy: the service, and MikroORM's driver. */
const pgImporters = [
  import.meta.filename,
  createRequire(import.meta.url).resolve("@mikro-orm/postgresql/package.json"),
];

let instrumentation: PgInstrumentation | undefined;

/**
 * Sends query spans to `provider`; `undefined` stops them. The patch itself stays for the life of the
 * process (undoing it would only undo the last copy patched), and costs a check per query once stopped.
 */
export function instrumentPg(provider: TracerProvider | undefined): void {
  if (!instrumentation) {
    // Only queries inside a traced call: background work (health probes every second, the change feed,
    // the pruner) would otherwise make a root span per query.
    instrumentation = new PgInstrumentation({
      enabled: false,
      requireParentSpan: true,
      requestHook: (span, { query }) => span.setAttribute("db.query.text", withoutLiterals(query.text)),
    });
    instrumentation.enable();
    for (const importer of pgImporters) {
      const fromImporter = createRequire(importer);
      fromImporter("pg");
      createRequire(fromImporter.resolve("pg"))("pg-pool");
    }
  }
  instrumentation.setTracerProvider(provider ?? new ProxyTracerProvider());
}
