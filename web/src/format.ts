/** How users, enums, times and labels read on screen, and labels typed by a person parsed back. */
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { Role, UserState } from "../../gen/user/v1/user_pb.js";

/** Role names as people say them. */
export const roleLabels: ReadonlyMap<Role, string> = new Map([
  [Role.USER, "User"],
  [Role.ADMIN, "Admin"],
]);

/** State names as people say them. */
export const stateLabels: ReadonlyMap<UserState, string> = new Map([
  [UserState.ACTIVE, "Active"],
  [UserState.SUSPENDED, "Suspended"],
  [UserState.DELETED, "Deleted"],
]);

/** A time in the browser's locale and zone; empty when absent. */
export function formatTime(ts: Timestamp | undefined): string {
  if (!ts) return "";
  return timestampDate(ts).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** Short: the time of day for today, the date otherwise (the full time is in the cell's tooltip). */
export function formatWhen(ts: Timestamp | undefined): string {
  if (!ts) return "";
  const at = timestampDate(ts);
  return at.toDateString() === new Date().toDateString()
    ? at.toLocaleTimeString(undefined, { hour12: false })
    : at.toLocaleDateString(undefined, { dateStyle: "medium" });
}

/** Only the time of day, for the live log. */
export function formatClock(ts: Timestamp | undefined): string {
  return (ts ? timestampDate(ts) : new Date()).toLocaleTimeString(undefined, { hour12: false });
}

/** Labels as `key=value, key=value`, in key order, as they are typed back in. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(", ");
}

/**
 * Parses `key=value, key=value` (commas or new lines). Only the syntax is checked here: the key and value
 * rules are the service's, which reports them as field violations.
 */
export function parseLabels(text: string): { labels: Record<string, string> } | { error: string } {
  const labels: Record<string, string> = {};
  for (const part of text.split(/[,\n]/)) {
    const item = part.trim();
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq <= 0) return { error: `"${item}" is not key=value` };
    labels[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return { labels };
}
