# syntax=docker/dockerfile:1
# Same steps as CI and `npm start`: npm ci, tsc, then production dependencies only.
ARG NODE_VERSION=22
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
COPY routes ./routes
RUN npm run build && npm prune --omit=dev

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 HF_HOME=/home/node/.cache/huggingface
WORKDIR /app
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node package.json openapi.yaml ./
# The template cache folder exists and belongs to `node`: a named volume mounted here
# starts as a copy of it (owned by node), not as a root-owned empty folder node cannot write.
RUN mkdir -p /home/node/.cache/huggingface && chown -R node:node /home/node/.cache
VOLUME ["/home/node/.cache/huggingface"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# A larger young generation keeps per-token garbage out of the old space: in `npm run bench`
# peak RSS at 1000 concurrent streams fell from ~290 to ~225 MB and CPU per stream by ~20 %.
CMD ["node", "--max-semi-space-size=32", "dist/src/server.js"]
