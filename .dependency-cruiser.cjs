/**
 * The direction of imports in src/ (docs/adr/0014-layers.md), checked in CI by `npm run deps`.
 *
 *   app, main             composition root: may import anything
 *   interceptors, web     the edge around handlers: rpc, transport (the protocol detector), ops, foundation
 *   events                outbound delivery of user changes and auth events (webhooks, NATS): above auth
 *   auth → users → changes   the features, in that order; they share passwords, rpc and foundation
 *   passwords             hashing and policy, below both auth and users
 *   transport, ops        the wire and operations: rpc and foundation only
 *   rpc                   the neutral vocabulary of a call (caller, context keys, errors): foundation only
 *   foundation            db, config, logger, bounded-map
 *
 * A rule names what a layer must not import; a new folder that fits no layer fails `layer-known`.
 */
const features = "^src/(events|auth|users|changes|passwords)/";
const edge = "^src/(interceptors|web)/";
const top = "^src/(app/|main\\.ts)";

module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      severity: "error",
      comment: "A cycle makes two modules one; break it with an interface owned by the lower one.",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "composition-root-is-top",
      severity: "error",
      comment: "Only main.ts imports the app; the app is where everything is wired.",
      from: { path: "^src/", pathNot: top },
      to: { path: top },
    },
    {
      name: "foundation-imports-no-layer",
      severity: "error",
      from: { path: "^src/(db/|config\\.ts|logger\\.ts|bounded-map\\.ts)" },
      to: { path: "^src/", pathNot: "^src/(db/|config\\.ts|logger\\.ts|bounded-map\\.ts)" },
    },
    {
      name: "rpc-is-neutral",
      severity: "error",
      comment: "src/rpc holds the vocabulary every layer shares; it depends on nothing but the foundation.",
      from: { path: "^src/rpc/" },
      to: { path: "^src/(app|interceptors|web|events|auth|users|changes|passwords|transport|ops)/" },
    },
    {
      name: "transport-knows-no-feature",
      severity: "error",
      comment: "The transport carries calls for any service: it sees rpc and the foundation only.",
      from: { path: "^src/transport/" },
      to: { path: "^src/(app|interceptors|web|events|auth|users|changes|passwords|ops)/" },
    },
    {
      name: "ops-knows-no-feature",
      severity: "error",
      from: { path: "^src/ops/" },
      to: { path: "^src/(app|interceptors|web|events|auth|users|changes|passwords)/" },
    },
    {
      name: "edge-knows-no-feature",
      severity: "error",
      comment: "Interceptors get what they need from features as functions (a token verifier), wired in src/app.",
      from: { path: edge },
      to: { path: features },
    },
    {
      name: "features-below-the-edge",
      severity: "error",
      comment: "Features read the caller from src/rpc/context.ts, not from the interceptors that put it there.",
      from: { path: features },
      to: { path: "^src/(interceptors|web|transport)/" },
    },
    {
      name: "events-on-top-of-the-features",
      severity: "error",
      comment: "Outbound delivery reads users and auth events; no feature depends on it (the app wires it).",
      from: { path: "^src/(auth|users|changes|passwords)/" },
      to: { path: "^src/events/" },
    },
    {
      name: "users-below-auth",
      severity: "error",
      comment: "auth depends on users (through the UserStore interface), never the other way.",
      from: { path: "^src/(users|changes|passwords)/" },
      to: { path: "^src/auth/" },
    },
    {
      name: "changes-below-users",
      severity: "error",
      from: { path: "^src/(changes|passwords)/" },
      to: { path: "^src/users/" },
    },
    {
      name: "passwords-below-changes",
      severity: "error",
      from: { path: "^src/passwords/" },
      to: { path: "^src/changes/" },
    },
    {
      name: "layer-known",
      severity: "error",
      comment: "Every source file belongs to a layer above; add a new folder to this file and to ADR 0014.",
      from: {
        path: "^src/",
        pathNot:
          "^src/(app|interceptors|web|events|auth|users|changes|passwords|transport|ops|rpc|db)/|^src/(main|config|logger|bounded-map)\\.ts$",
      },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: "node_modules|^gen/" },
    exclude: { path: "^(gen|node_modules)/" },
    parser: "swc",
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
