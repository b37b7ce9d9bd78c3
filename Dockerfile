# syntax=docker/dockerfile:1
#
# keygate container image.
#   docker build -t keygate .
#   docker run -v /path/to/keygate.toml:/etc/keygate/keygate.toml:ro ... keygate
# A full example with Redis and a backend: deploy/docker-compose.yml.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cargo's registry and target/ live in BuildKit cache mounts: a rebuild after a
# source change compiles keygate again, not all its dependencies. The cache
# mount is gone after this step, so the binary is copied out of it here.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -D -m 0755 target/release/keygate /out/keygate

FROM debian:bookworm-slim
# ca-certificates: system roots for https:// upstreams and rediss:// stores.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 keygate \
 && useradd --system --uid 10001 --gid keygate --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin keygate
COPY --from=build /out/keygate /usr/local/bin/keygate
COPY config/keygate.example.toml /etc/keygate/keygate.example.toml
USER keygate
# 8443: main listener (HTTPS). 9443: admin API; publish it on loopback or a
# private network only.
EXPOSE 8443 9443
# keygate runs as PID 1 and handles SIGTERM itself: it stops accepting and
# drains in-flight requests for [runtime] shutdown_grace (30s), so give
# `docker stop -t 40` (compose: stop_grace_period) more than that.
ENTRYPOINT ["/usr/local/bin/keygate"]
CMD ["serve", "-c", "/etc/keygate/keygate.toml"]
