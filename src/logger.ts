/**
 * The process logger: JSON lines on stdout (pino). Redaction is a second line of defence: nothing that
 * logs should ever hand it a secret, but if a field with such a name slips in, it is censored.
 */
import { type DestinationStream, type Logger, pino } from "pino";

/** Builds the logger; tests pass a destination to read what was logged. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: [
          "password",
          "*.password",
          "token",
          "*.token",
          "authorization",
          "*.authorization",
          "passwordHash",
          "*.passwordHash",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
