/**
 * Decodes a JSON request body, refusing invalid UTF-8 (which RFC 8259 forbids in JSON text) instead of
 * turning it into U+FFFD, which the string check could not tell from a real one. A JSON body holding it is
 * therefore INVALID_ARGUMENT as a whole (undecodable), without a field path: in JSON text the bytes may sit
 * anywhere, a field name included. For connect-node's `jsonOptions.textDecoder` and the unary fast path.
 */
export const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
