# syntax=docker/dockerfile:1
#
# The build stage bundles the service into dist/server (Rolldown; plain JavaScript, a handful of modules
# instead of ~770, ~45 MB less resident memory than running the TypeScript sources: docs/adr/0011) and
# builds the web console into web/dist (Vite). The runtime stage gets production dependencies only (the
# packages the bundle leaves out: pg, the native hashers) and those two builds.
#
#   docker build -t user-service .
#   docker run -p 8080:8080 -e JWT_SECRET=... -e DATABASE_URL=postgres://... user-service

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY . .
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# Production: JWT_SECRET (or JWT_PRIVATE_KEY_FILE) is required, and the service listens on every interface.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/server ./dist/server
COPY --from=build /app/web/dist ./web/dist
# The image's `node` user, by number, so Kubernetes' runAsNonRoot can verify it is not root. The files
# above stay owned by root: the process cannot modify its own code.
USER 1000:1000
EXPOSE 8080
# Slim images have no curl; Node's fetch asks /readyz (database answers, migrations applied, not stopping).
# Kubernetes ignores this and uses the gRPC probes in deploy/deployment.yaml.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself, which starts the graceful shutdown.
# An 8 MiB semi-space caps the young generation V8 would otherwise size at 128 MiB on a large host, and a
# fixed 1.2x heap growth replaces V8's up-to-4x headroom of garbage between full GCs: under 500 concurrent
# calls ~180 MB less peak RSS, for ~10 % more CPU per call (docs/adr/0005-memory.md).
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=20", "dist/server/main.js"]
