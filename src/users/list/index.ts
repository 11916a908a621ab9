/**
 * Filtering, ordering and keyset paging of users for ListUsers, StreamUsers and WatchUsers.
 *
 * - `parseFilter(text)` checks an AIP-160 filter (the contract's subset) and returns a tree, or null when
 *   blank (match all); `filterSql(tree, params)` turns it into a SQL condition on `users`. Precedence is
 *   AIP-160's: OR binds tighter than AND and juxtaposition (`a b` = `a AND b`), so `a AND b OR c` is
 *   `a AND (b OR c)`. Strings are double-quoted; email compares case-insensitively, display_name and labels
 *   exactly; `<`..`>=` on strings are code point order; `:` is "contains". Enum values are written by full
 *   name, bare or quoted (`role = ROLE_ADMIN`), with = and != only; times are quoted RFC 3339 (at most
 *   microseconds); `labels.k:*` is presence, and a user without label k matches only `labels.k != "..."`.
 * - `parseOrderBy(text)` checks order_by (blank = `create_time`); `orderBySql(order)` is the ORDER BY list
 *   (ties by id ascending), `keysetSql(order, cursor, params)` the "after the cursor" condition, and
 *   `sortKeySelect(order)` the select items each row must carry so `cursorFromRow(order, row)` can read its
 *   position. StreamUsers pages in id order: use `ID_ORDER` with the same functions.
 * - `createPageTokenCodec(key)` makes tokens from cursors and back, bound to the parsed request.
 * - Values only ever reach SQL as `$n` placeholders from one `SqlParams` (`createSqlParams(first)`), so the
 *   pieces combine into one statement numbered from any index; `toSql(build)` returns `{ sql, params }`.
 * - Bad input throws FilterError / OrderByError / PageTokenError: ServiceErrors with the reasons
 *   INVALID_FILTER / INVALID_ORDER_BY / INVALID_PAGE_TOKEN, which the errors interceptor already maps.
 *
 * Positions are text: times as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, via to_char in the query),
 * email as lower(email). Nothing needs converting: select `sortKeySelect(order)` next to the columns.
 *
 * ```ts
 * const codec = createPageTokenCodec(pageTokenKey); // once; >= 32 bytes, same on every replica
 * const request = { filter: parseFilter(req.filter), orderBy: parseOrderBy(req.orderBy), showDeleted };
 * const start = codec.decode(request, req.pageToken); // null on the first page
 * const { sql, params } = toSql((p) => `
 *   select id, email, display_name, ..., ${sortKeySelect(request.orderBy)} from users
 *   where ${showDeleted ? "true" : "delete_time is null"}
 *     and ${filterSql(request.filter, p)} and ${keysetSql(request.orderBy, start?.cursor ?? null, p)}
 *   order by ${orderBySql(request.orderBy)} limit ${p.add(pageSize + 1)}`);
 * const rows = (await client.query(sql, params)).rows;
 * const total = start?.total ?? (await count()); // later pages carry the first page's total_size
 * const nextPageToken = rows.length > pageSize
 *   ? codec.encode(request, { cursor: cursorFromRow(request.orderBy, rows[pageSize - 1]), total }) : "";
 * ```
 *
 * total_size is the same WHERE without the keyset: `select count(*) from users where ... and ${filterSql(f, p)}`,
 * counted on the first page only (and for a token of an earlier release, which carries no total).
 * WatchUsers can test a changed user with `select true from users where id = $1 and ${filterSql(f, p)}`
 * (p = createSqlParams(2)), so the filter has one meaning everywhere.
 *
 * Indexes that serve these queries (checked with EXPLAIN): (create_time, id) exists; add (update_time, id),
 * (lower(email) collate "C", id), (display_name collate "C", id) and `using gin (labels jsonb_path_ops)` for
 * label equality. Descending keys scan those backward with an incremental sort on id; `(x desc, id)`
 * indexes remove even that. `email = "..."` already uses users_email_live_key when deleted users are hidden.
 */
export { FilterError, OrderByError, PageTokenError } from "./errors.ts";
export { createEventFilter, type EventCondition, type EventFilter, type EventFilterSpec } from "./event-filter.ts";
export type { Comparator, Condition, Filter, FilterTree, Ordering } from "./filter.ast.ts";
export type { Restriction } from "./filter.fields.ts";
export { MAX_FILTER_DEPTH, MAX_FILTER_TERMS, parseFilter, parseFilterWith } from "./filter.parser.ts";
export { filterSql } from "./filter.sql.ts";
export { type Cursor, cursorFromRow, keysetSql, orderBySql, sortKeySelect } from "./keyset.ts";
export { DEFAULT_ORDER, ID_ORDER, type OrderBy, parseOrderBy, type SortField, type SortKey } from "./order-by.ts";
export { createPageTokenCodec, type PagePosition, type PageRequest, type PageTokenCodec } from "./page-token.ts";
export { createSqlParams, type SqlParams, type SqlQuery, toSql } from "./sql-params.ts";
export { normalizeRfc3339 } from "./time-literal.ts";
