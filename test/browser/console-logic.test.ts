/**
 * The console's pure logic, without a browser: where the settings point, how errors are explained (by
 * ErrorInfo reason, violations by field), how labels are parsed, and when a token is renewed.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { TokensSchema } from "../../gen/auth/v1/auth_service_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { explain, fieldKey } from "../../web/src/errors.ts";
import { parseLabels } from "../../web/src/format.ts";
import { renewAfterMs } from "../../web/src/session.ts";
import { readSettings, settingsUrl } from "../../web/src/settings.ts";

const page = (q = "") => new URL(`http://console.test:8080/${q}`);

function serviceError(reason: string, code: Code, violations: [string, string][] = []) {
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    { desc: ErrorInfoSchema, value: { reason, domain: "d" } },
  ];
  if (violations.length > 0) {
    details.push({
      desc: BadRequestSchema,
      value: { fieldViolations: violations.map(([field, description]) => ({ field, description })) },
    });
  }
  return new ConnectError("raw message", code, undefined, details);
}

const jwt = (claims: object) => `h.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.s`;

describe("console settings", () => {
  it("default to gRPC-web on the page's own origin", () => {
    expect(readSettings(page())).toEqual({ transport: "grpc-web", apiBaseUrl: "http://console.test:8080" });
  });

  it("take the transport and an http(s) service address from the query, and nothing else", () => {
    expect(readSettings(page("?transport=connect&api=https://api.test/"))).toEqual({
      transport: "connect",
      apiBaseUrl: "https://api.test",
    });
    expect(readSettings(page("?api=javascript:alert(1)")).apiBaseUrl).toBe("http://console.test:8080");
    expect(readSettings(page("?transport=grpc")).transport).toBe("grpc-web");
  });

  it("write back only what differs from the defaults", () => {
    expect(settingsUrl(page("?x=1"), { transport: "grpc-web", apiBaseUrl: "http://console.test:8080" })).toBe(
      "http://console.test:8080/?x=1",
    );
    expect(settingsUrl(page(), { transport: "connect", apiBaseUrl: "https://api.test" })).toBe(
      "http://console.test:8080/?transport=connect&api=https%3A%2F%2Fapi.test",
    );
  });
});

describe("console errors", () => {
  it("put field violations under the fields they name", () => {
    const why = explain(
      serviceError("INVALID_ARGUMENT", Code.InvalidArgument, [
        ["user.email", "must be a valid email address"],
        ['user.labels["Bad Key"]', "does not match"],
      ]),
    );
    expect(why.message).toBe("Please correct the marked fields.");
    expect(Object.fromEntries(why.fields)).toEqual({
      email: "must be a valid email address",
      labels: "does not match",
    });
  });

  it("decide on the reason, not the code or the raw message", () => {
    expect(explain(serviceError("ETAG_MISMATCH", Code.Aborted)).message).toContain("changed by someone else");
    expect(explain(serviceError("EMAIL_TAKEN", Code.AlreadyExists)).fields.get("email")).toBe(
      "already used by another user",
    );
    expect(explain(serviceError("INVALID_FILTER", Code.InvalidArgument)).message).toBe(
      "The filter is not valid: raw message",
    );
  });

  it("explain a password refused as too common, marking the password field", () => {
    const why = explain(
      serviceError("WEAK_PASSWORD", Code.InvalidArgument, [["password", "is one of the 10,000 most common passwords"]]),
    );
    expect(why.message).toContain("too common");
    expect(why.fields.get("password")).toContain("most common");
  });

  it("explain a service that could not be reached, naming it", () => {
    const why = explain(new ConnectError("Failed to fetch", Code.Unknown), "https://api.test");
    expect(why.reason).toBeUndefined();
    expect(why.message).toContain("Cannot reach the service at https://api.test");
  });

  it("map violation paths to form fields", () => {
    expect(fieldKey("user.display_name")).toBe("display_name");
    expect(fieldKey("password")).toBe("password");
    expect(fieldKey("update_mask")).toBe("update_mask");
  });
});

describe("console labels", () => {
  it("parse key=value lists and point at what is not one", () => {
    expect(parseLabels("team=core, tier = gold\nempty=")).toEqual({
      labels: { team: "core", tier: "gold", empty: "" },
    });
    expect(parseLabels("")).toEqual({ labels: {} });
    expect(parseLabels("team")).toEqual({ error: '"team" is not key=value' });
  });
});

describe("console token renewal", () => {
  it("happens at three quarters of the token's own lifetime, whatever the clock says", () => {
    const tokens = create(TokensSchema, {
      accessToken: jwt({ iat: 1000, exp: 1900 }),
      accessTokenExpireTime: timestampFromMs(0),
    });
    expect(renewAfterMs(tokens)).toBe(675_000);
  });

  it("falls back to the expire time, and never runs hot", () => {
    const now = 1_000_000;
    expect(
      renewAfterMs(
        create(TokensSchema, { accessToken: "opaque", accessTokenExpireTime: timestampFromMs(now + 60_000) }),
        now,
      ),
    ).toBe(45_000);
    expect(renewAfterMs(create(TokensSchema, { accessToken: jwt({ iat: 1, exp: 1 }) }))).toBe(1000);
  });
});
