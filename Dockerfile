# syntax=docker/dockerfile:1
# SuperStock: multi-stage on Node 24; the final image has production dependencies and the
# compiled service only, runs as the unprivileged `node` user, and writes nothing to its root
# filesystem (the chart mounts it read-only). Node is PID 1 and handles SIGTERM itself: the
# service drains in-flight requests and exits (graceful shutdown in src/supervisor.ts).

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist/src ./dist/src
USER node
EXPOSE 5059 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/main.js"]
