/**
 * What a parsed filter is: a tree of AND/OR/NOT over conditions that are already checked against the
 * users table (known field, allowed operator, literal of the right type). Nothing in it remembers source
 * offsets, so two spellings of the same filter give equal trees (and page tokens made with one work with
 * the other).
 */

/** The AIP-160 comparators. `:` is "has": substring on strings, presence for `labels.<key>:*`. */
export type Comparator = "=" | "!=" | "<" | "<=" | ">" | ">=" | ":";

/** The comparators that order values. */
export type Ordering = Exclude<Comparator, ":">;

/** `email` or `display_name` (email compares case-insensitively). `:` means "contains". */
export interface TextCondition {
  readonly kind: "text";
  readonly field: "email" | "display_name";
  readonly cmp: Comparator;
  readonly value: string;
}

/** `role` or `state`, by equality only; `value` is the stored word (`admin`, `suspended`). */
export interface EnumCondition {
  readonly kind: "enum";
  readonly field: "role" | "state";
  readonly cmp: "=" | "!=";
  readonly value: string;
}

/** `create_time` or `update_time` against a canonical RFC 3339 time. */
export interface TimeCondition {
  readonly kind: "time";
  readonly field: "create_time" | "update_time";
  readonly cmp: Ordering;
  readonly value: string;
}

/** `labels.<key>` compared to a string. A user without the label matches only `!=`. */
export interface LabelCondition {
  readonly kind: "label";
  readonly key: string;
  readonly cmp: Comparator;
  readonly value: string;
}

/** `labels.<key>:*`: the user has the label, whatever its value. */
export interface LabelPresentCondition {
  readonly kind: "label_present";
  readonly key: string;
}

/** One restriction on one field. */
export type Condition = TextCondition | EnumCondition | TimeCondition | LabelCondition | LabelPresentCondition;

/** A tree of AND/OR/NOT over conditions of type C (any type whose `kind` is not and, or, not). */
export type FilterTree<C> =
  | C
  | { readonly kind: "and" | "or"; readonly args: readonly FilterTree<C>[] }
  | { readonly kind: "not"; readonly arg: FilterTree<C> };

/** A parsed, checked filter on users. */
export type Filter = FilterTree<Condition>;
