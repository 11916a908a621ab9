/** Records the RPCs a page makes (method, content type, request message), to check what went on the wire. */
import { fromBinary } from "@bufbuild/protobuf";
import type { Page } from "playwright-core";
import { WatchUsersRequestSchema } from "../../gen/user/v1/user_service_pb.js";

/** One RPC request as the browser sent it. */
export interface RpcRequest {
  method: string;
  contentType: string;
  body: Buffer | null;
}

/** Starts recording; the returned array fills as the page calls. */
export function recordRpcs(page: Page): RpcRequest[] {
  const seen: RpcRequest[] = [];
  page.on("request", (r) => {
    const m = /\/(user\.v1\.UserService|auth\.v1\.AuthService)\/(\w+)$/.exec(new URL(r.url()).pathname);
    if (!m || r.method() !== "POST") return;
    seen.push({ method: m[2], contentType: r.headers()["content-type"] ?? "", body: r.postDataBuffer() });
  });
  return seen;
}

/** The resume_token a WatchUsers request carried (streaming requests are one enveloped message, 5-byte prefix). */
export function resumeTokenOf(req: RpcRequest): string {
  const message = (req.body ?? Buffer.alloc(5)).subarray(5);
  if (req.contentType.includes("json"))
    return (JSON.parse(message.toString() || "{}") as { resumeToken?: string }).resumeToken ?? "";
  return fromBinary(WatchUsersRequestSchema, message).resumeToken;
}
