import { describe, expect, it } from "vitest";
import {
  createPageTokenCodec,
  type PageRequest,
  PageTokenError,
  parseFilter,
  parseOrderBy,
} from "../../../src/users/list/index.ts";

const codec = createPageTokenCodec("k".repeat(32));
const request: PageRequest = {
  filter: parseFilter('email:"ann" AND labels.team:*'),
  orderBy: parseOrderBy("update_time desc, email"),
  showDeleted: false,
};
const cursor = { keys: ["2026-01-02T03:04:05.123457Z", "ann@x.org"], id: "3f1c2a9e-0000-4000-8000-000000000001" };
const token = codec.encode(request, cursor);

function decodeError(req: PageRequest, tok: string): PageTokenError {
  try {
    codec.decode(req, tok);
  } catch (err) {
    if (err instanceof PageTokenError) return err;
    throw err;
  }
  throw new Error("accepted");
}

describe("page tokens", () => {
  it("are opaque base64url and round-trip the cursor exactly (microseconds included)", () => {
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(token).not.toContain("ann");
    expect(codec.decode(request, token)).toEqual(cursor);
  });

  it("mean the first page when empty", () => {
    expect(codec.decode(request, "")).toBeNull();
  });

  it("accept another spelling of the same request", () => {
    const same = {
      filter: parseFilter('(email : "ann")   labels.team:*'),
      orderBy: parseOrderBy("update_time desc,email asc"),
      showDeleted: false,
    };
    expect(codec.decode(same, token)).toEqual(cursor);
  });

  it.each<[string, Partial<PageRequest>]>([
    ["filter", { filter: parseFilter('email:"bob" AND labels.team:*') }],
    ["no filter", { filter: null }],
    ["order_by direction", { orderBy: parseOrderBy("update_time, email") }],
    ["order_by fields", { orderBy: parseOrderBy("update_time desc") }],
    ["show_deleted", { showDeleted: true }],
  ])("refuse a different %s", (_, change) => {
    const err = decodeError({ ...request, ...change }, token);
    expect(err.reason).toBe("INVALID_PAGE_TOKEN");
    expect(err.message).toBe("invalid page_token: it was made for a different filter, order_by or show_deleted");
  });

  it("refuse every single-character modification", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (let i = 0; i < token.length; i++) {
      const swapped = alphabet[(alphabet.indexOf(token[i]) + 1) % alphabet.length];
      const modified = token.slice(0, i) + swapped + token.slice(i + 1);
      expect(() => codec.decode(request, modified), `position ${i}`).toThrow(PageTokenError);
    }
  });

  it.each([
    ["garbage", "not a token"],
    ["short base64url", "AAAA"],
    ["padding", `${token}=`],
    ["appended data", `${token}AA`],
    ["truncated", token.slice(0, -2)],
    ["tag alone", token.slice(0, 43)],
    ["non-canonical base64url", `${token.slice(0, -1)}${token.at(-1) === "A" ? "B" : "A"}`],
  ])("refuse %s", (_, bad) => {
    expect(decodeError(request, bad).message).toBe(
      "invalid page_token: not a page token from this server, or it was modified",
    );
  });

  it("refuse a token made with another key", () => {
    const other = createPageTokenCodec(new Uint8Array(32).fill(7));
    expect(() => codec.decode(request, other.encode(request, cursor))).toThrow(PageTokenError);
  });

  it("need a key of at least 32 bytes", () => {
    expect(() => createPageTokenCodec("short")).toThrow(RangeError);
  });
});
