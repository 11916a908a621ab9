/**
 * What the console connects to and how, read from the address bar so a link carries it:
 * `?transport=connect` picks the Connect protocol (gRPC-web is the default), `?api=https://host:port` points
 * the console at a service on another origin (which must allow this page's origin in CORS_ALLOWED_ORIGINS).
 */

/** The protocols the console can speak to the service. */
export type TransportKind = "grpc-web" | "connect";

/** The transports, in the order the switch shows them, with the names people know them by. */
export const transports: readonly { kind: TransportKind; label: string }[] = [
  { kind: "grpc-web", label: "gRPC-web" },
  { kind: "connect", label: "Connect" },
];

/** Where and how the console talks to the service. */
export interface Settings {
  readonly transport: TransportKind;
  /** Base URL of the service, without a trailing slash; the page's own origin by default. */
  readonly apiBaseUrl: string;
}

/** Only http(s) URLs: anything else (javascript:, data:) falls back to the page's origin. */
function baseUrl(raw: string | null, origin: string): string {
  if (!raw) return origin;
  try {
    const url = new URL(raw);
    if (url.protocol === "http:" || url.protocol === "https:") return url.href.replace(/\/+$/, "");
  } catch {
    // Not a URL: same as absent.
  }
  return origin;
}

/** Reads the settings from a page URL. */
export function readSettings(page: URL): Settings {
  return {
    transport: page.searchParams.get("transport") === "connect" ? "connect" : "grpc-web",
    apiBaseUrl: baseUrl(page.searchParams.get("api"), page.origin),
  };
}

/** The page URL that carries `settings`, so a reload or a shared link keeps them; defaults are left out. */
export function settingsUrl(page: URL, settings: Settings): string {
  const url = new URL(page.href);
  if (settings.transport === "grpc-web") url.searchParams.delete("transport");
  else url.searchParams.set("transport", settings.transport);
  if (settings.apiBaseUrl === page.origin) url.searchParams.delete("api");
  else url.searchParams.set("api", settings.apiBaseUrl);
  return url.href;
}

/** Checks a base URL typed by a person; undefined when it is not an http(s) URL. */
export function parseBaseUrl(raw: string): string | undefined {
  const sentinel = "about:invalid";
  const parsed = baseUrl(raw.trim(), sentinel);
  return parsed === sentinel ? undefined : parsed;
}
