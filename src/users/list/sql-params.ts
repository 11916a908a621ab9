/**
 * The one way values reach SQL here: every value becomes a `$n` placeholder handed out by a SqlParams, so
 * nothing a caller typed is ever part of the SQL text, and pieces built by different functions (show_deleted,
 * filter, keyset, limit) share one numbering that may start wherever the caller's own parameters end.
 */

/** Collects parameter values and returns the placeholder of each. */
export interface SqlParams {
  /** Appends a value and returns its placeholder (`$1`, `$2`, ...). */
  add(value: unknown): string;
  /** The values so far, in placeholder order; pass them as the query's parameters. */
  readonly values: unknown[];
}

/** A parameterized statement, ready for `client.query(sql, params)`. */
export interface SqlQuery {
  sql: string;
  params: unknown[];
}

/** Starts numbering at `firstIndex` (1 for a fresh query; n + 1 after the caller's own n parameters). */
export function createSqlParams(firstIndex = 1): SqlParams {
  const values: unknown[] = [];
  return {
    values,
    add(value) {
      values.push(value);
      return `$${firstIndex + values.length - 1}`;
    },
  };
}

/** Builds a whole statement (or fragment) through one SqlParams and returns the SQL with its values. */
export function toSql(build: (params: SqlParams) => string, firstIndex = 1): SqlQuery {
  const params = createSqlParams(firstIndex);
  const sql = build(params);
  return { sql, params: params.values };
}
