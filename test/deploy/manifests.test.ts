/**
 * The deployment files, read the way Kubernetes and Docker would and held to what the service needs:
 * probes that ask the gRPC health service on the port the service listens on, an HTTP/2-aware Service,
 * selectors that select the Deployment's pods, configuration keys the service actually reads (checked by
 * running the real loadConfig on them), and grace periods that let a shutdown finish.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ConfigError, loadConfig } from "../../src/config.ts";

const root = resolve(import.meta.dirname, "../..");
const deployDir = join(root, "deploy");

// Just the fields these tests read.
type Labels = Record<string, string>;
interface Probe {
  grpc?: { port: number | string; service?: string };
  httpGet?: unknown;
  exec?: unknown;
  tcpSocket?: unknown;
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  image: string;
  ports: { name?: string; containerPort: number }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  env?: { name: string; value?: string }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number }; exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Labels };
  // biome-ignore lint/suspicious/noExplicitAny: a manifest's spec differs by kind; each test narrows it.
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

function load(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(join(deployDir, file), "utf8")).map((doc) => {
    expect(doc.errors, file).toEqual([]);
    return doc.toJS() as Manifest;
  });
}

const files = readdirSync(deployDir).filter((f) => f.endsWith(".yaml"));
const manifests = files
  .filter((f) => f !== "kustomization.yaml")
  .flatMap((f) => load(f).map((m) => ({ file: f, ...m })));
const one = (kind: string, file?: string) => {
  const found = manifests.filter((m) => m.kind === kind && (file === undefined || m.file === file));
  expect(found, kind).toHaveLength(1);
  return found[0];
};

const deployment = one("Deployment");
const pod = deployment.spec.template;
const container: Container = pod.spec.containers[0];
const configMap = one("ConfigMap");
const secret = one("Secret", "secret.example.yaml");
const port = container.ports[0];
const probes = {
  startup: container.startupProbe,
  readiness: container.readinessProbe,
  liveness: container.livenessProbe,
};

/** Every environment variable loadConfig reads, found by handing it an environment that records reads. */
function variablesReadByConfig(): Set<string> {
  const read = new Set<string>();
  const env = new Proxy({} as Record<string, string | undefined>, {
    get: (_target, key) => {
      if (typeof key === "string") read.add(key);
      return undefined;
    },
  });
  loadConfig(env);
  return read;
}

const selects = (selector: Labels, labels: Labels) => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe("kustomization", () => {
  const kustomization = load("kustomization.yaml")[0] as unknown as { resources: string[] };

  it("lists every manifest but the secret example, which must never be applied by accident", () => {
    const expected = files.filter((f) => f !== "kustomization.yaml" && f !== "secret.example.yaml");
    expect([...kustomization.resources].sort()).toEqual(expected.sort());
  });
});

describe("Deployment", () => {
  it("runs 3 replicas and selects its own pods", () => {
    expect(deployment.spec.replicas).toBe(3);
    expect(selects(deployment.spec.selector.matchLabels, pod.metadata.labels)).toBe(true);
  });

  it("probes with gRPC health checks of the whole server on the container port", () => {
    for (const [name, probe] of Object.entries(probes)) {
      expect(probe, `${name} probe`).toBeDefined();
      expect(probe?.grpc, `${name} probe uses grpc`).toEqual({ port: port.containerPort, service: "" });
      expect(probe?.httpGet ?? probe?.exec ?? probe?.tcpSocket, name).toBeUndefined();
    }
  });

  it("gives start-up (migrations) more time than readiness, and a database outage time before a restart", () => {
    const window = (p: Probe | undefined) => (p?.periodSeconds ?? 10) * (p?.failureThreshold ?? 3);
    expect(window(probes.startup)).toBeGreaterThanOrEqual(60);
    expect(window(probes.liveness)).toBeGreaterThanOrEqual(120);
    expect(window(probes.readiness)).toBeLessThanOrEqual(15);
  });

  it("listens where the configuration says", () => {
    expect(port.containerPort).toBe(Number(configMap.data?.PORT));
    expect(configMap.data?.HOST).toBe("0.0.0.0");
  });

  it("lets a shutdown finish: grace period > preStop sleep + SHUTDOWN_GRACE + the closing second", () => {
    const preStopSeconds = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    expect(preStopSeconds, "a preStop sleep for endpoint propagation").toBeGreaterThanOrEqual(3);
    const { shutdownGraceMs } = loadConfig({ ...configMap.data, JWT_SECRET: "x".repeat(32) });
    expect(pod.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      preStopSeconds * 1000 + shutdownGraceMs + 1000,
    );
  });

  it("runs as non-root on a read-only root filesystem, with resources set", () => {
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
    expect(pod.spec.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    expect(container.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(container.resources?.limits?.memory).toBeDefined();
  });

  it("takes its environment from the ConfigMap and the Secret", () => {
    const from = container.envFrom ?? [];
    expect(from.some((e) => e.configMapRef?.name === configMap.metadata.name)).toBe(true);
    expect(from.some((e) => e.secretRef?.name === secret.metadata.name)).toBe(true);
  });
});

describe("Service, PodDisruptionBudget, HorizontalPodAutoscaler", () => {
  it("the Service speaks cleartext HTTP/2 to the pods' port", () => {
    const service = one("Service");
    expect(selects(service.spec.selector, pod.metadata.labels)).toBe(true);
    const [servicePort] = service.spec.ports;
    expect(servicePort.appProtocol).toBe("kubernetes.io/h2c");
    expect([port.name, port.containerPort]).toContain(servicePort.targetPort);
  });

  it("the PodDisruptionBudget covers the Deployment's pods and lets at least one go", () => {
    const pdb = one("PodDisruptionBudget");
    expect(pdb.apiVersion).toBe("policy/v1");
    expect(selects(pdb.spec.selector.matchLabels, pod.metadata.labels)).toBe(true);
    if (pdb.spec.minAvailable !== undefined) expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
    else expect(pdb.spec.maxUnavailable).toBeGreaterThanOrEqual(1);
  });

  it("the HPA scales the Deployment on CPU, never below its replicas", () => {
    const hpa = one("HorizontalPodAutoscaler");
    expect(hpa.apiVersion).toBe("autoscaling/v2");
    expect(hpa.spec.scaleTargetRef).toMatchObject({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: deployment.metadata.name,
    });
    expect(hpa.spec.minReplicas).toBe(deployment.spec.replicas);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    expect(hpa.spec.metrics).toContainEqual(
      expect.objectContaining({ type: "Resource", resource: expect.objectContaining({ name: "cpu" }) }),
    );
  });
});

describe("ConfigMap and Secret", () => {
  const known = variablesReadByConfig();

  it("hold only variables src/config.ts reads", () => {
    const keys = [...Object.keys(configMap.data ?? {}), ...Object.keys(secret.stringData ?? {})];
    expect(keys.filter((k) => !known.has(k))).toEqual([]);
  });

  it("keep the secrets in the Secret and out of the ConfigMap", () => {
    expect(Object.keys(secret.stringData ?? {})).toEqual(expect.arrayContaining(["JWT_SECRET", "DATABASE_URL"]));
    for (const name of ["JWT_SECRET", "DATABASE_URL", "ADMIN_PASSWORD", "OTEL_EXPORTER_OTLP_HEADERS"]) {
      expect(configMap.data ?? {}).not.toHaveProperty(name);
    }
  });

  it("make a valid production configuration once the placeholders are replaced", () => {
    const env = { ...configMap.data, ...secret.stringData, JWT_SECRET: "a-real-secret-of-at-least-32-bytes!!" };
    const config = loadConfig(env);
    expect(config.nodeEnv).toBe("production");
    expect(config.databaseUrl).toMatch(/^postgres:\/\//);
  });

  it("refuse to start with the example's placeholder secret", () => {
    const start = () => loadConfig({ ...configMap.data, ...secret.stringData });
    expect(start).toThrow(ConfigError);
    expect(start).toThrow(/^JWT_SECRET:/);
  });
});

describe("Dockerfile", () => {
  const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");
  const instructions = dockerfile
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
  const lines = (instruction: string) => instructions.filter((l) => l.startsWith(`${instruction} `));
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };

  it("builds in stages from Node 24, installing production dependencies only in the runtime stage", () => {
    expect(lines("ARG").join("\n")).toMatch(/node:24-(bookworm-)?slim/);
    expect(lines("FROM").length).toBeGreaterThanOrEqual(2);
    const runtime = instructions.slice(instructions.findLastIndex((l) => l.startsWith("FROM ")));
    expect(runtime.some((l) => /^RUN npm install .*--omit=dev/.test(l))).toBe(true);
  });

  it("builds the server bundle and the web console, and ships both", () => {
    expect(pkg.scripts.build).toContain("scripts/ensure-built.ts --force");
    expect(lines("RUN").some((l) => /npm run build$/.test(l))).toBe(true);
    for (const dir of ["dist/server", "web/dist"])
      expect(lines("COPY").some((l) => l.includes("--from=build") && l.includes(dir))).toBe(true);
  });

  it("runs what `npm start` runs, as a non-root user, on the Deployment's port", () => {
    expect(lines("CMD")).toEqual([
      'CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=20", "dist/server/main.js"]',
    ]);
    expect(pkg.scripts.start).toBe(
      "node scripts/node24.mjs --max-semi-space-size=8 --heap-growing-percent=20 dist/server/main.js",
    );
    const [user] = lines("USER");
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER (root|0)(:|$)/);
    expect(lines("EXPOSE")).toEqual([`EXPOSE ${port.containerPort}`]);
    expect(lines("ENV").join(" ")).toMatch(/NODE_ENV=production/);
    expect(lines("ENV").join(" ")).toMatch(/HOST=0\.0\.0\.0/);
  });

  it("checks health with Node's fetch against /readyz (slim images have no curl)", () => {
    const [healthcheck] = lines("HEALTHCHECK");
    expect(healthcheck).toMatch(/CMD \["node", "-e", ".*fetch\(.*\/readyz/);
  });

  it("keeps secrets, dependencies and local data out of the build context", () => {
    const ignored = readFileSync(join(root, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(["node_modules", ".git", ".env", ".data", "web/dist", "dist"]));
    // The build stage runs `npm run build`, which is scripts/ensure-built.ts.
    expect(ignored).not.toContain("scripts");
  });
});
