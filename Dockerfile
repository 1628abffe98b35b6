# syntax=docker/dockerfile:1
# dcs-csi image: one binary for every role.
#   controller Deployment: runs as the non-root user 65532 created below
#                          (runAsUser: 65532 in deploy/controller.yaml).
#   node DaemonSet:        runs as root and privileged (/dev/fuse, mounts with
#                          Bidirectional propagation); so do the mount pods.
#
#   docker build -t dcs-csi:dev .

# --- build -----------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace (see .dockerignore); the proto crate compiles the CSI
# .proto with protox, so no protoc is needed.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p dcs-csi \
 && install -D -m 0755 target/release/dcs-csi /out/dcs-csi

# --- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim
# fuse3: fusermount3 and /etc/fuse.conf; ca-certificates: HTTPS endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 dcs \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin dcs
COPY --from=build /out/dcs-csi /usr/local/bin/dcs-csi
# Default to the unprivileged user; the node DaemonSet overrides with runAsUser: 0.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dcs-csi"]
