/**
 * Which of two copies of a user is newer. List answers and live events race each other, so a copy is only
 * ever replaced by a newer one (by update_time), and the newest copies seen live are remembered for a while
 * to correct a list answer that was read just before they happened.
 */
import type { User } from "../../gen/user/v1/user_pb.js";

const at = (u: User) => (u.updateTime ? Number(u.updateTime.seconds) * 1e9 + u.updateTime.nanos : 0);

/** True when `candidate` is a later version than `current` (or the same version: harmless to re-show). */
export function isNewer(candidate: User, current: User): boolean {
  return at(candidate) >= at(current);
}

/** The latest copies seen live, bounded. */
export interface RecentUsers {
  remember(user: User): void;
  /** `user`, or the newer copy seen live. */
  freshest(user: User): User;
}

/** Creates the memory; `limit` bounds it (oldest forgotten first). */
export function createRecentUsers(limit = 500): RecentUsers {
  const byId = new Map<string, User>();
  return {
    remember(user) {
      const known = byId.get(user.id);
      if (known && !isNewer(user, known)) return;
      byId.delete(user.id);
      byId.set(user.id, user);
      if (byId.size > limit) byId.delete(byId.keys().next().value as string);
    },
    freshest(user) {
      const known = byId.get(user.id);
      return known && !isNewer(user, known) ? known : user;
    },
  };
}
