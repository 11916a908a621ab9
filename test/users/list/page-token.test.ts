import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  createPageTokenCodec,
  type PageRequest,
  PageTokenError,
  parseFilter,
  parseOrderBy,
} from "../../../src/users/list/index.ts";

const KEY = "k".repeat(32);
const codec = createPageTokenCodec(KEY);
const request: PageRequest = {
  filter: parseFilter('email:"ann" AND labels.team:*'),
  orderBy: parseOrderBy("update_time desc, email"),
  showDeleted: false,
};
const cursor = { keys: ["2026-01-02T03:04:05.123457Z", "ann@x.org"], id: "3f1c2a9e-0000-4000-8000-000000000001" };
const token = codec.encode(request, { cursor, total: 1234 });

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
  it("are opaque base64url and round-trip the cursor exactly (microseconds included) and the total", () => {
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(token).not.toContain("ann");
    expect(codec.decode(request, token)).toEqual({ cursor, total: 1234 });
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
    expect(codec.decode(same, token)).toEqual({ cursor, total: 1234 });
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

  describe("the total they carry", () => {
    const body = () => JSON.parse(Buffer.from(token, "base64url").subarray(32).toString("utf8")) as unknown[];
    /** A token with this body, signed as the server signs (what only a holder of the key can make). */
    const signed = (b: unknown[]) => {
      const json = Buffer.from(JSON.stringify(b));
      const tag = createHmac("sha256", KEY).update("user.v1.ListUsers page token v1\n").update(json).digest();
      return Buffer.concat([tag, json]).toString("base64url");
    };

    it("cannot be changed without the key", () => {
      const [binding, keys, id] = body();
      const forged = Buffer.concat([
        Buffer.from(token, "base64url").subarray(0, 32),
        Buffer.from(JSON.stringify([binding, keys, id, 1])),
      ]).toString("base64url");
      expect(decodeError(request, forged).message).toBe(
        "invalid page_token: not a page token from this server, or it was modified",
      );
    });

    it("is absent (count again) in a token made before totals were carried", () => {
      const [binding, keys, id] = body();
      expect(codec.decode(request, signed([binding, keys, id]))).toEqual({ cursor, total: null });
    });

    it.each([[-1], [1.5], ["12"], [null], [2 ** 31], [Number.MAX_SAFE_INTEGER + 2]])(
      "is refused when it is %j, even when signed",
      (total) => {
        const [binding, keys, id] = body();
        expect(decodeError(request, signed([binding, keys, id, total])).reason).toBe("INVALID_PAGE_TOKEN");
      },
    );
  });

  it("refuse a token made with another key", () => {
    const other = createPageTokenCodec(new Uint8Array(32).fill(7));
    expect(() => codec.decode(request, other.encode(request, { cursor, total: 1 }))).toThrow(PageTokenError);
  });

  it("need a key of at least 32 bytes", () => {
    expect(() => createPageTokenCodec("short")).toThrow(RangeError);
  });
});
