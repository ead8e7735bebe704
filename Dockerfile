# syntax=docker/dockerfile:1
# One image for every process of the product; the command picks which (docker-compose.yml and
# deploy/kubernetes/ run each as its own container: the orchestrator supervises, not `npm start`).
#   API:               node dist/src/server.js             (the default)
#   message worker:    node dist/scripts/worker-start.js message
#   extraction worker: node dist/scripts/worker-start.js extraction
#   event worker:      node dist/scripts/worker-start.js events
#   migrations:        node dist/scripts/migrate.js
# Commands run node directly, not npm: node is then the process the runtime signals, and its
# SIGTERM handler drains in-flight work within SHUTDOWN_TIMEOUT_MS.

ARG NODE_IMAGE=node:20-bookworm-slim

# Build: every dependency (TypeScript included), then `npm run build` → dist/ (SQL migrations included).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

# Production dependencies only, installed from the same lock file.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Runtime: node, production node_modules and dist/; no sources, compiler or dev tools.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and only readable by the app's user: a compromised process cannot rewrite its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The node user (uid 1000) that the official image ships.
USER node
EXPOSE 3000
# The API answers /healthz on PORT; a worker on WORKER_HEALTH_PORT (set it for worker containers).
# Node's own fetch: the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.WORKER_HEALTH_PORT || process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/src/server.js"]
