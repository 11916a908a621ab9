/**
 * The SQL of the store's writes (./user-writes.ts): each write to a user is one statement, sent as a named
 * prepared statement in autocommit (docs/adr/0015). A data-modifying CTE changes the row only if its version
 * is still the one read (`where id = $1 and version = $2`, re-checked on the newest row version under READ
 * COMMITTED, so of two writers that read the same version exactly one changes the row), appends the change to
 * the change log from the row it changed (so no row, no event), and, when the write kills the user's tokens,
 * ends the user's sessions joined on that row (the user's row is locked first, then its sessions: ADR 0013).
 * The change log's commit trigger (Migration20261122000100) runs at the statement's implicit COMMIT.
 */

import { userColumns } from "../user.record.ts";
import type { RevokeSessionsSql } from "../user-store.ts";

/** A named prepared statement: the same name always carries the same text. */
export interface Statement {
  name: string;
  text: string;
}

/** The columns a write sets, in the order of their parameters ($3 to $13). Kind never changes. */
const SET = `email = $3, display_name = $4, role = $5, state = $6, labels = $7::jsonb, version = $8,
    update_time = $9, delete_time = $10, tokens_valid_after = $11, email_verified = $12, password_change_required = $13`;

/**
 * The change-log append of the row the CTE `from` returned (seq stays null: the sequencer sets it), with its
 * actor and changed fields starting at parameter `$actor` (ACTOR_PARAMS: kind, user id, API key id, client
 * address, request id, changed fields).
 */
const appendFrom = (
  from: string,
  type: string,
  snapshot: string,
  previous: string,
  revokeBefore: string,
  actor: number,
) =>
  `insert into user_changes (user_id, type, snapshot, previous, revoke_before, actor_kind, actor_user_id,
      actor_api_key_id, actor_client_address, actor_request_id, changed_fields)
    select id, ${type}, ${snapshot}::jsonb, ${previous}::jsonb, ${revokeBefore}, $${actor}, $${actor + 1}::uuid,
      $${actor + 2}::uuid, $${actor + 3}, $${actor + 4}, $${actor + 5}::text[] from ${from}`;

/** How many parameters the actor and changed fields take (see `actorValues` in ./user-writes.ts). */
export const ACTOR_PARAMS = 6;

/**
 * A transition of one user. Parameters: $1 id, $2 the version read, $3-$13 the user after the change (SET),
 * $14 change type, $15 snapshot, $16 previous snapshot, $17 revoke_before, $18-$23 the actor and changed
 * fields, then $24 the password hash when `hash`. One row (`changed`) when the row was written, none when its version moved on (or it is gone).
 */
export function transitionStatement(opts: { hash: boolean; revoke: RevokeSessionsSql | null }): Statement {
  const ctes = [
    `upd as (update users set ${SET}${opts.hash ? ", password_hash = $24" : ""}
    where id = $1 and version = $2 returning id)`,
    `chg as (${appendFrom("upd", "$14", "$15", "$16", "$17", 18)})`,
  ];
  if (opts.revoke) ctes.push(`rev as (${opts.revoke("upd", "$9")})`);
  return {
    name: `user-transition${opts.hash ? "-hash" : ""}${opts.revoke ? "-revoke" : ""}`,
    text: `with ${ctes.join(",\n  ")}\nselect 1 as changed from upd`,
  };
}

const INSERT_USER = `insert into users (id, email, display_name, role, state, labels, password_hash, version, create_time,
    update_time, delete_time, tokens_valid_after, kind)`;
const NEW_USER = "$1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13";

/**
 * A creation. Parameters: $1-$13 the row (INSERT_USER's columns), $14 its snapshot, $15-$20 the actor and
 * changed fields; with `idempotent`, $21 caller id and $22 request id. With a key, the user is inserted only when this statement claims the key
 * (`on conflict do nothing` waits for a concurrent claim of the same key to commit or roll back); a failed
 * insert (email taken) rolls the claim back with it. One row (`created`) when the user was inserted.
 */
export function createStatement(idempotent: boolean): Statement {
  const append = appendFrom("ins", "'created'", "$14", "null", "null", 15);
  if (!idempotent) {
    return {
      name: "user-create",
      text: `with ins as (${INSERT_USER} values (${NEW_USER}) returning id),
  chg as (${append})
select 1 as created from ins`,
    };
  }
  return {
    name: "user-create-idempotent",
    text: `with claim as (insert into idempotency_keys (caller_id, request_id, user_id) values ($21, $22, $1)
    on conflict do nothing returning user_id),
  ins as (${INSERT_USER} select ${NEW_USER} from claim returning id),
  chg as (${append})
select 1 as created from ins`,
  };
}

/** The user a CreateUser retry key points to. */
export const idempotentUser: Statement = {
  name: "user-by-idempotency-key",
  text: "select user_id from idempotency_keys where caller_id = $1 and request_id = $2",
};

/** A user by id, row-locked for the transaction (the fallback of a blind write that kept losing races). */
export const userForUpdate: Statement = {
  name: "user-by-id-for-update",
  text: `select ${userColumns} from users where id = $1 for update`,
};

/** A user that is not deleted, by email (given in lower case), with its password hash (Login). */
export const userWithHashByEmail: Statement = {
  name: "user-with-hash-by-email",
  text: `select ${userColumns}, password_hash from users where delete_time is null and lower(email) = $1`,
};

/** A user by id, deleted ones included, with its password hash. */
export const userWithHashById: Statement = {
  name: "user-with-hash-by-id",
  text: `select ${userColumns}, password_hash from users where id = $1`,
};

/** Whether an admin that is not deleted exists. */
export const adminExists: Statement = {
  name: "admin-exists",
  text: "select exists (select 1 from users where role = 'admin' and delete_time is null) as present",
};
