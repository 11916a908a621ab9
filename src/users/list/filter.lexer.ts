/**
 * Splits a filter into tokens, each with the offset it starts at so the parser's errors can point at it.
 * Keywords (AND, OR, NOT) come out as words; only the parser knows where a word is a keyword.
 */
import { FilterError } from "./errors.ts";

/** What a token is. `minus` is AIP-160's `-` negation prefix; `end` closes every token list. */
export type TokenKind = "word" | "string" | "comparator" | "lparen" | "rparen" | "minus" | "end";

/** One token. For strings `text` is the decoded value; for the others it is the source text. */
export interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  readonly pos: number;
}

/** Longest first, so `<=` is never read as `<` followed by `=`. */
const COMPARATORS = ["<=", ">=", "!=", "=", "<", ">", ":"];
const WORD_CHAR = /[A-Za-z0-9_.*-]/;
const SPACE = /[ \t\r\n]/;
const ESCAPES: Record<string, string> = { '"': '"', "\\": "\\", n: "\n", r: "\r", t: "\t" };

/** Reads the double-quoted string opening at `start`; returns its value and the offset after it. */
function readString(input: string, start: number): [string, number] {
  let value = "";
  let i = start + 1;
  while (i < input.length) {
    const c = input[i];
    if (c === '"') return [value, i + 1];
    if (c === "\\") {
      const escaped = ESCAPES[input[i + 1] ?? ""];
      if (escaped === undefined) {
        throw new FilterError('unknown escape in string; use \\", \\\\, \\n, \\r or \\t', i);
      }
      value += escaped;
      i += 2;
    } else {
      value += c;
      i += 1;
    }
  }
  throw new FilterError("string is not closed", start);
}

/** The tokens of a filter, ending with an `end` token at the input's length. */
export function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i];
    const pos = i;
    const comparator = COMPARATORS.find((op) => input.startsWith(op, i));
    if (SPACE.test(c)) {
      i += 1;
    } else if (c === "(" || c === ")") {
      tokens.push({ kind: c === "(" ? "lparen" : "rparen", text: c, pos });
      i += 1;
    } else if (c === '"') {
      const [value, end] = readString(input, i);
      tokens.push({ kind: "string", text: value, pos });
      i = end;
    } else if (comparator) {
      tokens.push({ kind: "comparator", text: comparator, pos });
      i += comparator.length;
    } else if (c === "-") {
      // Only where a token starts: inside a word (`labels.cost-center`) a dash is part of the word.
      tokens.push({ kind: "minus", text: c, pos });
      i += 1;
    } else if (WORD_CHAR.test(c)) {
      while (i < input.length && WORD_CHAR.test(input[i])) i += 1;
      tokens.push({ kind: "word", text: input.slice(pos, i), pos });
    } else {
      throw new FilterError(
        `unexpected character ${JSON.stringify(String.fromCodePoint(input.codePointAt(i) ?? 0))}`,
        pos,
      );
    }
  }
  tokens.push({ kind: "end", text: "", pos: input.length });
  return tokens;
}
