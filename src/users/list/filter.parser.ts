/**
 * A recursive-descent parser for the contract's AIP-160 subset, following AIP-160's grammar and so its
 * precedence: OR binds tighter than AND, and juxtaposition (`a b`) is an AND at the same level as `AND`.
 * `a AND b OR c` therefore means `a AND (b OR c)`, as in every AIP-160 implementation.
 *
 *   filter     = [expression] end
 *   expression = sequence {"AND" sequence}
 *   sequence   = factor {factor}
 *   factor     = term {"OR" term}
 *   term       = ["NOT" | "-"] simple
 *   simple     = "(" expression ")" | field comparator value
 */

import { FilterError } from "./errors.ts";
import type { Condition, Filter, FilterTree } from "./filter.ast.ts";
import { type Restriction, toCondition } from "./filter.fields.ts";
import { type Token, tokenize } from "./filter.lexer.ts";

/** Deepest parenthesis nesting accepted; bounds the recursion a hostile filter can cause. */
export const MAX_FILTER_DEPTH = 32;
/** Most restrictions accepted in one filter; bounds the SQL a filter can produce. */
export const MAX_FILTER_TERMS = 200;

const KEYWORDS = new Set(["AND", "OR", "NOT"]);

function describe(t: Token): string {
  if (t.kind === "end") return "the end of the filter";
  if (t.kind === "string") return "a string";
  return `"${t.text}"`;
}

function isKeyword(t: Token, keyword: string): boolean {
  return t.kind === "word" && t.text === keyword;
}

function combine<C>(kind: "and" | "or", args: FilterTree<C>[]): FilterTree<C> {
  return args.length === 1 ? args[0] : { kind, args };
}

/** Parses and checks a filter on users; null for an empty (or blank) filter, which matches every user. */
export function parseFilter(input: string): Filter | null {
  return parseFilterWith<Condition>(input, toCondition);
}

/**
 * Parses a filter of the same grammar over other fields: `check` turns each `field op value` into a
 * condition or throws a FilterError (ListAuthEvents has its own fields). Null for a blank filter.
 */
export function parseFilterWith<C>(input: string, check: (r: Restriction) => C): FilterTree<C> | null {
  type Filter = FilterTree<C>;
  const tokens = tokenize(input);
  let at = 0;
  let terms = 0;
  const peek = () => tokens[at];
  const next = () => (tokens[at].kind === "end" ? tokens[at] : tokens[at++]);

  function expression(depth: number): Filter {
    const args = [sequence(depth)];
    while (isKeyword(peek(), "AND")) {
      next();
      args.push(sequence(depth));
    }
    return combine("and", args);
  }

  function sequence(depth: number): Filter {
    const args = [factor(depth)];
    while (peek().kind !== "end" && peek().kind !== "rparen" && !isKeyword(peek(), "AND")) args.push(factor(depth));
    return combine("and", args);
  }

  function factor(depth: number): Filter {
    const args = [term(depth)];
    while (isKeyword(peek(), "OR")) {
      next();
      args.push(term(depth));
    }
    return combine("or", args);
  }

  function term(depth: number): Filter {
    if (peek().kind === "minus" || isKeyword(peek(), "NOT")) {
      next();
      return { kind: "not", arg: simple(depth) };
    }
    return simple(depth);
  }

  function simple(depth: number): Filter {
    const open = peek();
    if (open.kind !== "lparen") return restriction();
    next();
    if (depth >= MAX_FILTER_DEPTH)
      throw new FilterError(`parentheses nested deeper than ${MAX_FILTER_DEPTH}`, open.pos);
    if (peek().kind === "rparen") throw new FilterError("empty parentheses", open.pos);
    const inner = expression(depth + 1);
    const close = next();
    if (close.kind !== "rparen") {
      throw new FilterError(`expected ")" to close "(" at offset ${open.pos}, found ${describe(close)}`, close.pos);
    }
    return inner;
  }

  function restriction(): Filter {
    const field = next();
    if (field.kind !== "word" || KEYWORDS.has(field.text)) {
      throw new FilterError(`expected a field name, found ${describe(field)}`, field.pos);
    }
    terms += 1;
    if (terms > MAX_FILTER_TERMS) throw new FilterError(`more than ${MAX_FILTER_TERMS} terms`, field.pos);
    const op = next();
    if (op.kind !== "comparator") {
      throw new FilterError(
        `expected =, !=, <, <=, >, >= or : after ${field.text}, found ${describe(op)}`,
        op.pos,
        field.text,
      );
    }
    const value = next();
    if (value.kind !== "word" && value.kind !== "string") {
      throw new FilterError(
        `expected a value after ${field.text} ${op.text}, found ${describe(value)}`,
        value.pos,
        field.text,
      );
    }
    return check({ field, op, value });
  }

  if (peek().kind === "end") return null;
  const filter = expression(0);
  const rest = peek();
  if (rest.kind !== "end") throw new FilterError(`unexpected ${describe(rest)}`, rest.pos);
  return filter;
}
