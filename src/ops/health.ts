/**
 * gRPC health checking (grpc.health.v1.Health), the protocol load balancers, Kubernetes probes and service
 * meshes speak. One serving status for the whole process, reported under every configured service name:
 * SERVING while a periodic probe (the database) answers, NOT_SERVING when it does not, and NOT_SERVING for
 * good once shutdown has begun, so traffic drains before the listener goes away.
 */
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { ServiceError } from "../rpc/errors.ts";

/** Resolves true while the service can do its work (the database answers). */
export type HealthProbe = () => Promise<boolean>;

/** What the health status is made of. */
export interface HealthOptions {
  /** Service names reported besides "" (the server as a whole). */
  services: readonly string[];
  probe: HealthProbe;
  /** Time between the end of one probe and the start of the next; default 1 s. */
  intervalMs?: number;
  /** A probe that has not answered by then counts as a failure; default 2 s. */
  timeoutMs?: number;
}

/** The serving status of every known service name, as Check, Watch and List report it. */
export interface HealthStatus {
  /** The status of a service; undefined for a name that is not known. */
  get(service: string): Status | undefined;
  /** Every known name with its status. */
  all(): Map<string, Status>;
  /** The current status at once, then each change, until `signal` aborts; SERVICE_UNKNOWN for unknown names. */
  watch(service: string, signal: AbortSignal): AsyncIterable<Status>;
  /** Reports NOT_SERVING from now on, whatever the probe says, and stops probing. */
  shutdown(): void;
  readonly shutDown: boolean;
}

function probeWithin(probe: HealthProbe, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((done) => (timer = setTimeout(() => done(false), ms)));
  return Promise.race([probe().catch(() => false), late]).finally(() => clearTimeout(timer));
}

/**
 * Creates the status and runs the first probe before resolving, so the status is known (not UNKNOWN) before
 * the server starts listening. Later probes run in the background until `shutdown()`.
 */
export async function startHealth(opts: HealthOptions): Promise<HealthStatus> {
  const names = new Set(["", ...opts.services]);
  const listeners = new Set<() => void>();
  let status = Status.NOT_SERVING;
  let shutDown = false;
  let timer: NodeJS.Timeout | undefined;

  const set = (next: Status) => {
    if (next === status) return;
    status = next;
    for (const listener of [...listeners]) listener();
  };
  const nextChange = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        listeners.delete(wake);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      listeners.add(wake);
      signal.addEventListener("abort", wake);
    });
  const probeLoop = async () => {
    const ok = await probeWithin(opts.probe, opts.timeoutMs ?? 2000);
    if (shutDown) return;
    set(ok ? Status.SERVING : Status.NOT_SERVING);
    timer = setTimeout(probeLoop, opts.intervalMs ?? 1000);
    timer.unref();
  };
  await probeLoop();

  const get = (service: string) => (names.has(service) ? status : undefined);
  return {
    get,
    all: () => new Map([...names].map((name) => [name, status])),
    async *watch(service, signal) {
      let sent: Status | undefined;
      while (!signal.aborted) {
        const current = get(service) ?? Status.SERVICE_UNKNOWN;
        if (current === sent) {
          await nextChange(signal);
          continue;
        }
        sent = current;
        yield current;
      }
    },
    shutdown() {
      shutDown = true;
      clearTimeout(timer);
      set(Status.NOT_SERVING);
    },
    get shutDown() {
      return shutDown;
    },
  };
}

/**
 * The grpc.health.v1.Health implementation. Check answers NOT_FOUND for an unknown name; Watch keeps the
 * stream open on one (SERVICE_UNKNOWN), as the health proto asks, and ends with UNAVAILABLE when the
 * server shuts down, so clients reconnect elsewhere.
 */
export function createHealthService(health: HealthStatus): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const status = health.get(req.service);
      if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return { status };
    },
    async *watch(req, ctx) {
      for await (const status of health.watch(req.service, ctx.signal)) yield { status };
      if (health.shutDown) throw new ServiceError("UNAVAILABLE", "the server is shutting down");
    },
    list() {
      return { statuses: Object.fromEntries([...health.all()].map(([name, status]) => [name, { status }])) };
    },
  };
}
