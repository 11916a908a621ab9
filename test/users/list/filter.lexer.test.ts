import { describe, expect, it } from "vitest";
import { tokenize } from "../../../src/users/list/filter.lexer.ts";
import { FilterError } from "../../../src/users/list/index.ts";

const kinds = (input: string) => tokenize(input).map((t) => `${t.kind}:${t.text}@${t.pos}`);

describe("tokenize", () => {
  it("reads every comparator, longest first, with offsets", () => {
    expect(kinds("a=b!=c<d<=e>f>=g:h")).toEqual([
      "word:a@0",
      "comparator:=@1",
      "word:b@2",
      "comparator:!=@3",
      "word:c@5",
      "comparator:<@6",
      "word:d@7",
      "comparator:<=@8",
      "word:e@10",
      "comparator:>@11",
      "word:f@12",
      "comparator:>=@13",
      "word:g@15",
      "comparator::@16",
      "word:h@17",
      "end:@18",
    ]);
  });

  it("reads parentheses, keywords as words, and a leading dash as minus", () => {
    expect(kinds(' (NOT -labels.cost-center:*) OR x = "y"')).toEqual([
      "lparen:(@1",
      "word:NOT@2",
      "minus:-@6",
      "word:labels.cost-center@7",
      "comparator::@25",
      "word:*@26",
      "rparen:)@27",
      "word:OR@29",
      "word:x@32",
      "comparator:=@34",
      "string:y@36",
      "end:@39",
    ]);
  });

  it("decodes string escapes and keeps everything else literal", () => {
    const [token] = tokenize(String.raw`"a\"b\\c\nd\te\r' % _ AND )"`);
    expect(token).toEqual({ kind: "string", text: "a\"b\\c\nd\te\r' % _ AND )", pos: 0 });
  });

  it("skips tabs and newlines between tokens", () => {
    expect(kinds("a\t=\n\r b")).toEqual(["word:a@0", "comparator:=@2", "word:b@6", "end:@7"]);
  });

  it.each([
    ['email = "abc', 8, "string is not closed"],
    [String.raw`email = "a\qb"`, 10, "unknown escape"],
    ['email = "a\\', 10, "unknown escape"],
    ["email ~ x", 6, 'unexpected character "~"'],
    ["email ! x", 6, 'unexpected character "!"'],
    ["email = 'x'", 8, `unexpected character "'"`],
    ["name = 😀", 7, 'unexpected character "😀"'],
  ])("rejects %j at offset %i", (input, position, message) => {
    const err = (() => {
      try {
        tokenize(input);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(FilterError);
    expect(err).toMatchObject({ position, reason: "INVALID_FILTER" });
    expect((err as Error).message).toContain(`offset ${position}`);
    expect((err as Error).message).toContain(message);
  });
});
