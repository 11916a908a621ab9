/**
 * Strings PostgreSQL cannot store, caught before any handler runs: a NUL character (U+0000), which no
 * `text` column accepts, and invalid UTF-8. Found in any string field of any request message (nested
 * messages, repeated fields, map keys and values, oneofs, wrapper and Struct fields), they become
 * INVALID_ARGUMENT with a field violation naming the field, instead of a database error answered INTERNAL
 * or UNAVAILABLE. The walk is planned once per message type from its descriptor, so a message without
 * string fields costs one map lookup, and a string costs one `indexOf` and one `isWellFormed`.
 *
 * Invalid UTF-8 reaches this check through `reportInvalidUtf8`: protobuf-es would otherwise reject the
 * whole message while decoding, without saying which field was at fault.
 */
import { type DescField, type DescMessage, isMessage, ScalarType } from "@bufbuild/protobuf";
import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import type { FieldViolation } from "./errors.ts";

/** How one field is walked. Nested plans are looked up when walked, so recursive types plan fine. */
type Step =
  | { kind: "string"; field: DescField; list: boolean }
  | { kind: "message"; field: DescField; list: boolean; message: DescMessage }
  | { kind: "json"; field: DescField; list: boolean }
  | { kind: "map"; field: DescField; stringKey: boolean; value: "string" | "json" | DescMessage | undefined };

/** The fields of a message that can hold a string, directly or further down; empty when none can. */
type Plan = readonly Step[];

const plans = new Map<DescMessage, Plan>();

/** A Struct field holds a plain JSON object in protobuf-es v2 (except inside google.protobuf.Value). */
const isStructField = (f: DescField, m: DescMessage) =>
  m.typeName === "google.protobuf.Struct" && f.parent.typeName !== "google.protobuf.Value";

function planOf(desc: DescMessage): Plan {
  let plan = plans.get(desc);
  if (!plan) {
    plan = holdsStrings(desc, new Set()) ? desc.fields.flatMap((f) => stepOf(f) ?? []) : [];
    plans.set(desc, plan);
  }
  return plan;
}

/** Whether any string can be reached from a message of this type (following every message field). */
function holdsStrings(desc: DescMessage, seen: Set<DescMessage>): boolean {
  if (seen.has(desc)) return false;
  seen.add(desc);
  return desc.fields.some((f) => {
    if (f.fieldKind === "map" && f.mapKey === ScalarType.STRING) return true;
    if (f.scalar === ScalarType.STRING) return true;
    return f.message !== undefined && (isStructField(f, f.message) || holdsStrings(f.message, seen));
  });
}

function stepOf(field: DescField): Step | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING ? { kind: "string", field, list: false } : undefined;
    case "list":
      if (field.listKind === "scalar")
        return field.scalar === ScalarType.STRING ? { kind: "string", field, list: true } : undefined;
      if (field.listKind === "message") return messageStep(field, field.message, true);
      return undefined;
    case "message":
      if (isWrapperDesc(field.message) && !field.oneof) {
        // Unwrapped: the field holds the wrapper's value itself.
        return field.message.fields[0].scalar === ScalarType.STRING
          ? { kind: "string", field, list: false }
          : undefined;
      }
      return messageStep(field, field.message, false);
    case "map": {
      const stringKey = field.mapKey === ScalarType.STRING;
      let value: "string" | "json" | DescMessage | undefined;
      if (field.mapKind === "scalar") value = field.scalar === ScalarType.STRING ? "string" : undefined;
      else if (field.mapKind === "message") {
        if (isStructField(field, field.message)) value = "json";
        else if (holdsStrings(field.message, new Set())) value = field.message;
      }
      return stringKey || value ? { kind: "map", field, stringKey, value } : undefined;
    }
    default:
      return undefined;
  }
}

function messageStep(field: DescField, message: DescMessage, list: boolean): Step | undefined {
  if (isStructField(field, message)) return { kind: "json", field, list };
  return holdsStrings(message, new Set()) ? { kind: "message", field, list, message } : undefined;
}

// String.prototype.isWellFormed is ES2024 (Node 20+); the project's TypeScript lib stops at ES2023.
const isWellFormed = (String.prototype as unknown as { isWellFormed(this: string): boolean }).isWellFormed;

/** Why a string cannot be stored, or undefined when it can. */
function problemOf(s: string): string | undefined {
  if (s.indexOf("\0") !== -1) return "must not contain a NUL character (U+0000)";
  if (!isWellFormed.call(s)) return "must be valid UTF-8";
  return undefined;
}

/**
 * The path of a map entry: like protovalidate's (`labels["team"]`), with the key escaped as JSON (a NUL shows
 * as `\u0000`) and cut to 100 characters (an ImportUsers failure reason is not bounded like an error is).
 */
const keyPath = (path: string, key: string) =>
  `${path}[${JSON.stringify(key.length > 100 ? `${key.slice(0, 99)}…` : key)}]`;
const join = (prefix: string, name: string) => (prefix ? `${prefix}.${name}` : name);

type Sink = FieldViolation[];

// Enough to show the caller what is wrong (the errors interceptor sends no more than 50 anyway), however
// many of 20,000 repeated strings are bad.
const MAX_VIOLATIONS = 50;

function checkString(value: unknown, path: () => string, out: Sink, what = "") {
  if (typeof value !== "string" || value.length === 0 || out.length >= MAX_VIOLATIONS) return;
  const problem = problemOf(value);
  if (problem) out.push({ field: path(), description: what + problem });
}

function checkJson(value: unknown, path: string, out: Sink) {
  if (typeof value === "string") checkString(value, () => path, out);
  else if (Array.isArray(value)) for (let i = 0; i < value.length; i++) checkJson(value[i], `${path}[${i}]`, out);
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      checkString(k, () => keyPath(path, k), out, "key ");
      checkJson(v, keyPath(path, k), out);
    }
  }
}

/** The value a field holds in a message object (a oneof member only when its case is selected). */
function fieldValue(message: Record<string, unknown>, field: DescField): unknown {
  if (!field.oneof) return message[field.localName];
  const group = message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
  return group?.case === field.localName ? group.value : undefined;
}

function walk(plan: Plan, message: Record<string, unknown>, prefix: string, out: Sink): void {
  for (const step of plan) {
    if (out.length >= MAX_VIOLATIONS) return;
    const value = fieldValue(message, step.field);
    if (value === undefined || value === null) continue;
    const path = join(prefix, step.field.name);
    if (step.kind === "map") {
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        if (step.stringKey) checkString(key, () => keyPath(path, key), out, "key ");
        if (step.value === "string") checkString(v, () => keyPath(path, key), out);
        else if (step.value === "json") checkJson(v, keyPath(path, key), out);
        else if (step.value) walk(planOf(step.value), v as Record<string, unknown>, keyPath(path, key), out);
      }
      continue;
    }
    if (!step.list) check(step, value, path, out);
    else {
      const items = value as unknown[];
      for (let i = 0; i < items.length; i++) check(step, items[i], `${path}[${i}]`, out);
    }
  }
}

/** Checks one value of a string, JSON or message field. */
function check(step: Exclude<Step, { kind: "map" }>, value: unknown, path: string, out: Sink): void {
  if (step.kind === "string") checkString(value, () => path, out);
  else if (step.kind === "json") checkJson(value, path, out);
  else walk(planOf(step.message), value as Record<string, unknown>, path, out);
}

/** True when some string below `message` cannot be stored: the allocation-free pass of every request. */
function anyBad(plan: Plan, message: Record<string, unknown>): boolean {
  for (const step of plan) {
    const value = fieldValue(message, step.field);
    if (value === undefined || value === null) continue;
    if (step.kind === "map") {
      const map = value as Record<string, unknown>;
      for (const key in map) {
        if (step.stringKey && isBad(key)) return true;
        const v = map[key];
        if (
          step.value === "string"
            ? isBad(v)
            : step.value === "json"
              ? jsonBad(v)
              : step.value && anyBad(planOf(step.value), v as Record<string, unknown>)
        )
          return true;
      }
    } else if (!step.list) {
      if (valueBad(step, value)) return true;
    } else {
      const items = value as unknown[];
      for (let i = 0; i < items.length; i++) if (valueBad(step, items[i])) return true;
    }
  }
  return false;
}

const isBad = (v: unknown) => typeof v === "string" && v.length > 0 && problemOf(v) !== undefined;

function jsonBad(v: unknown): boolean {
  const out: Sink = [];
  checkJson(v, "", out);
  return out.length > 0;
}

function valueBad(step: Exclude<Step, { kind: "map" }>, value: unknown): boolean {
  if (step.kind === "string") return isBad(value);
  if (step.kind === "json") return jsonBad(value);
  return anyBad(planOf(step.message), value as Record<string, unknown>);
}

/**
 * The field violations of every string in `message` that holds a NUL character or invalid UTF-8 (empty
 * when there is none). Called on every request message: a message whose type holds no strings costs one
 * map lookup, one that is fine is walked once without allocating; paths are built only for a bad one.
 */
export function stringViolations(desc: DescMessage, message: unknown): FieldViolation[] {
  const plan = planOf(desc);
  if (plan.length === 0 || !isMessage(message, desc)) return [];
  const fields = message as unknown as Record<string, unknown>;
  if (!anyBad(plan, fields)) return [];
  const out: FieldViolation[] = [];
  walk(plan, fields, "", out);
  return out;
}

/** U+DFFF alone, which no decoded UTF-8 can contain: marks a string that arrived as invalid UTF-8. */
const INVALID_UTF8_MARK = "\uDFFF";

let reporting = false;

/**
 * Makes protobuf-es decode a binary string field holding invalid UTF-8 to a string marked as such (its
 * lenient decoding behind a lone surrogate) instead of throwing, so `stringViolations` can name the field
 * and an ImportUsers row with such a field fails alone instead of ending the stream. Applies to every
 * binary decoding of this copy of protobuf-es, on every path (fast paths and connect-node's adapter): a
 * decoded request must therefore pass `stringViolations` before use, which the validation interceptor and
 * ImportUsers ensure. Idempotent.
 */
export function reportInvalidUtf8(): void {
  if (reporting) return;
  reporting = true;
  const standard = getTextEncoding();
  configureTextEncoding({
    ...standard,
    decodeUtf8(bytes, strict) {
      if (!strict) return standard.decodeUtf8(bytes, false);
      try {
        return standard.decodeUtf8(bytes, true);
      } catch {
        return INVALID_UTF8_MARK + standard.decodeUtf8(bytes, false);
      }
    },
  });
}
