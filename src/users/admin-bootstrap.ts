/**
 * First start: when no admin exists, create one from ADMIN_EMAIL / ADMIN_PASSWORD. Without a configured
 * password one is generated and written to `$DATA_DIR/admin-password` (mode 0600), never to a log: logs are
 * shipped, kept and read by more people than the admin. The file is written (and synced) before the user
 * is created, so a crash in between cannot leave an admin whose password nobody has.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError } from "../config.ts";
import { weakPasswordProblem } from "../passwords/password-policy.ts";
import { hashPassword } from "../passwords/passwords.ts";
import { ServiceError } from "../rpc/errors.ts";
import type { UserStore } from "./user-store.ts";

/** The admin this start created: its email, and the file holding its password when it was generated. */
export interface CreatedAdmin {
  email: string;
  passwordFile: string | undefined;
}

/** Writes `text` to `file` with mode 0600 whatever the umask, atomically (a temporary file renamed over it). */
function writeSecretFile(file: string, text: string): void {
  mkdirSync(resolve(file, ".."), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    // The mode given to open is filtered by the umask and ignored for a file that already exists.
    fchmodSync(fd, 0o600);
    writeSync(fd, `${text}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}

/** Removes the password file unless another start has since written its own password there. */
function removeIfHolding(file: string, password: string): void {
  try {
    if (readFileSync(file, "utf8").trim() === password) rmSync(file, { force: true });
  } catch {
    // Already gone.
  }
}

/**
 * Creates the bootstrap admin if needed; returns what it created, or undefined when an admin exists. A
 * configured password that is too weak (common, or the email) stops start-up (ConfigError) rather than
 * create an admin anyone could guess; it is only checked when it is about to be used.
 */
export async function ensureAdmin(
  users: Pick<UserStore, "hasAdmin" | "create">,
  opts: { email: string; password: string | undefined; dataDir: string },
): Promise<CreatedAdmin | undefined> {
  if (await users.hasAdmin()) return undefined;
  let password = opts.password;
  let passwordFile: string | undefined;
  if (password !== undefined) {
    const weak = weakPasswordProblem(password, opts.email);
    if (weak) throw new ConfigError("ADMIN_PASSWORD", weak);
  } else {
    password = randomBytes(15).toString("base64url");
    passwordFile = join(resolve(opts.dataDir), "admin-password");
    try {
      writeSecretFile(passwordFile, password);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "unwritable";
      throw new ConfigError(
        "ADMIN_PASSWORD",
        `is not set, and ${passwordFile} cannot be written (${code}) to hold a generated one`,
      );
    }
  }
  try {
    await users.create({
      email: opts.email,
      displayName: "Administrator",
      role: "admin",
      labels: {},
      passwordHash: await hashPassword(password, { wait: true }),
    });
  } catch (err) {
    // Another replica created it first, or a non-admin holds the address: either way, nothing to do here,
    // and a generated password that is not the admin's must not be left behind.
    if (passwordFile) removeIfHolding(passwordFile, password);
    if (err instanceof ServiceError && err.reason === "EMAIL_TAKEN") return undefined;
    throw err;
  }
  return { email: opts.email, passwordFile };
}
