# The Taituri image: every service, one image (docs/deploy.md).
#
# One image, the service chosen by the command (`node services/<name>/src/main.ts`), not one image
# per service: the five services share almost all of their code and dependencies (packages/*,
# kafkajs, mongodb, OpenTelemetry: most of the 300 MB), so five images would be five copies of the
# same layers to build, scan, sign and pull, and a release could ship services of different commits.
# One image means one tag per release, the same bytes everywhere, and the chart choosing the service
# per Deployment, as it does. What a service does not use costs disk, not memory: Node loads only
# the modules main.ts imports.
#
# Build:  buildah build --layers -t taituri:local .   (or docker build; `npm run image` does this
#         on a base image it makes locally, passing --build-arg BASE_IMAGE)
# Run:    node services/<ingress|conversation|generation|payment|limiter>/src/main.ts
#         (also: node scripts/kafka-topics.ts, the chart's topics Job; node packages/simulator/src/main.ts)
#
# BASE_IMAGE: Debian bookworm with Node at /usr/local/bin/node and npm, as the official image has
# them. Pin it by digest in a release pipeline.
ARG BASE_IMAGE=docker.io/library/node:24.21.0-bookworm-slim

# --- prune: the workspaces the five services need, with a lock file of only their packages --------
# (and the WhatsApp simulator's, which the chart can deploy for a demo, off by default.)
# turbo prune (Turborepo's own answer for monorepo images) leaves out tests/integration,
# packages/devenv and the dev tooling, whose dependencies (testcontainers, playwright-core) npm would
# otherwise count as production dependencies of the workspace root. Its json/ half (package.json
# files and the lock file) changes only when dependencies do, so the stages built from it stay
# cached across source changes. packages/testing (test helpers, a devDependency of the services that
# turbo keeps as a workspace) and unit tests are not shipped.
FROM ${BASE_IMAGE} AS prune
WORKDIR /src
ENV TURBO_TELEMETRY_DISABLED=1 NPM_CONFIG_UPDATE_NOTIFIER=false
COPY . .
# The `npm-ca` secret, when given, holds CA certificates npm needs beyond Node's own (a TLS-inspecting
# proxy's): a secret, so it is never part of a layer.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    --mount=type=secret,id=npm-ca \
    if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi; \
    npm exec --yes --package="turbo@$(node -p 'require("./package.json").devDependencies.turbo')" -- \
      turbo prune @taituri/ingress-service @taituri/conversation-service @taituri/generation-service \
        @taituri/payment-service @taituri/limiter-service @taituri/simulator --docker --out-dir /pruned \
 && cd /pruned/full \
 && rm -rf packages/testing turbo.json \
 && find . -name '*.test.ts' -delete

# --- deps: every dependency of those workspaces, dev ones included (buf, ts-proto) -----------------
FROM ${BASE_IMAGE} AS deps
WORKDIR /src
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
COPY --from=prune /pruned/json/ ./
# --ignore-scripts: no package's install script runs in the build. None is needed here: buf's
# launcher finds its binary in @bufbuild/buf-linux-x64 without its postinstall, the `node` package's
# script would download the Node this image already has, and protobufjs's only prints a notice.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    --mount=type=secret,id=npm-ca \
    if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi; \
    npm ci --ignore-scripts --loglevel=warn

# --- proto: the generated protobuf code (gitignored), by buf and ts-proto from npm, offline -------
FROM deps AS proto
COPY buf.yaml buf.gen.yaml ./
COPY protos ./protos
RUN npm run --workspace @taituri/proto generate

# --- production-deps: node_modules without the dev dependencies ----------------------------------
# npm links every workspace, packages/testing too; the scope folders prune empties go as well. A
# workspace that needs another version of a package than the root's has its own node_modules
# (packages/telemetry does): /deps keeps them all, at their paths.
FROM deps AS production-deps
RUN npm prune --omit=dev --ignore-scripts --loglevel=warn \
 && rm -rf node_modules/@taituri/testing \
 && find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete \
 && mkdir /deps \
 && cp -a --parents node_modules $(find packages services -mindepth 2 -maxdepth 2 -name node_modules) /deps/

# --- runtime --------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
WORKDIR /app
# Owned by root and not writable by the service's user: the code cannot be changed by the process
# that runs it. Nothing writes below /app; temporary files go to /tmp (an emptyDir in the chart).
# Least often changed first: a release that changes only sources ships a new layer of a few MB, and
# nodes keep the ~300 MB node_modules layer they have.
COPY --from=production-deps /deps/ ./
COPY --from=proto /src/packages/proto/src/gen ./packages/proto/src/gen
COPY --from=prune /pruned/full/ ./
# The chart's topics Job runs it (node scripts/kafka-topics.ts); it needs only the packages above.
COPY scripts/kafka-topics.ts ./scripts/
ENV NODE_ENV=production
# A numeric user, so Kubernetes can check runAsNonRoot without a passwd entry; the chart's
# podSecurityContext runs as this same 10001.
USER 10001:10001
# No shell at run time: the base's entrypoint (a shell script in the official image) is dropped and
# the command is exec form, so Node is PID 1 and receives SIGTERM itself. No tini: every service
# handles SIGTERM (drains, closes its consumers, exits 0) and Ctrl-C, and the only children any of
# them has are the limiter's cluster workers (LIMITER_WORKERS > 1), which its primary stops and
# waits for, so nothing is left for an init to reap.
# No default command: which service runs is always said (`node services/<name>/src/main.ts`).
ENTRYPOINT []
EXPOSE 3000 3001 3002 3003 3004 3100 3103 50051

# Last, so a new revision or date reuses every layer above.
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/taituri/taituri
LABEL org.opencontainers.image.title="taituri" \
      org.opencontainers.image.description="Taituri's services (ingress, conversation, generation, payment, limiter): run one with node services/<name>/src/main.ts" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The release each trace names (service.version); the chart sets it too, from the image tag.
ENV TAITURI_VERSION=${VERSION}
