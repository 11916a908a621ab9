/**
 * auth.v1.AuthService/ListAuthEvents (admin; the auth interceptor enforces the proto's declaration): the
 * recorded auth events newest first, keyset-paged on (time, id) with tamper-evident page tokens bound to the
 * filter. Events are written in batches (auth-event-recorder.ts), so one recorded a moment ago may not be
 * listed yet. Merged into the AuthService implementation in src/app/features.ts.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type pg from "pg";
import type { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { createSignedTokens } from "../rpc/signed-token.ts";
import { PageTokenError, toSql } from "../users/list/index.ts";
import { AUTH_EVENT_COLUMNS, type AuthEventRow, toAuthEvent } from "./auth-event.message.ts";
import { type AuthEventFilter, authEventFilterSql, parseAuthEventFilter } from "./auth-event-filter.ts";

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;

/** After this event, in (time desc, id desc) order; time to the microsecond as PostgreSQL prints it. */
interface EventCursor {
  time: string;
  id: string;
}

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Page tokens (src/rpc/signed-token.ts) bound to the parsed filter (its canonical JSON, so two spellings of one
 * filter share tokens): a token is good only for the listing it came from, and no position can be forged.
 */
export function createAuthEventPageTokens(key: string) {
  const tokens = createSignedTokens(key, "auth.v1.ListAuthEvents page token v1");
  const invalid = () => new PageTokenError("not a page token of this listing, or it was modified");
  return {
    encode(filter: AuthEventFilter, cursor: EventCursor): string {
      return tokens.seal(JSON.stringify(filter), [cursor.time, cursor.id]);
    },
    decode(filter: AuthEventFilter, token: string): EventCursor | null {
      if (token === "") return null;
      const parsed = tokens.open(JSON.stringify(filter), token);
      if (!Array.isArray(parsed) || parsed.length !== 2) throw invalid();
      const [time, id] = parsed as unknown[];
      if (typeof time !== "string" || !TIME.test(time) || typeof id !== "string" || !UUID.test(id)) throw invalid();
      return { time, id };
    },
  };
}

/** Builds the handler. */
export function createAuthEventService(deps: {
  pool: pg.Pool;
  pageTokens: ReturnType<typeof createAuthEventPageTokens>;
}): Partial<ServiceImpl<typeof AuthService>> {
  return {
    async listAuthEvents(req) {
      const filter = parseAuthEventFilter(req.filter);
      const after = deps.pageTokens.decode(filter, req.pageToken);
      const size = req.pageSize <= 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE);
      const { sql, params } = toSql(
        (p) => `
          select ${AUTH_EVENT_COLUMNS},
            to_char(time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as time_us
          from auth_events
          where ${authEventFilterSql(filter, p)}
            and ${after ? `(time, id) < (${p.add(after.time)}::timestamptz, ${p.add(after.id)}::uuid)` : "true"}
          order by time desc, id desc
          limit ${p.add(size + 1)}`,
      );
      const { rows } = await deps.pool.query<AuthEventRow & { time_us: string }>(sql, params);
      const page = rows.slice(0, size);
      const last = page.at(-1);
      return {
        events: page.map(toAuthEvent),
        nextPageToken:
          rows.length > size && last ? deps.pageTokens.encode(filter, { time: last.time_us, id: last.id }) : "",
      };
    },
  };
}
