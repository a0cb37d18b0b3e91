# syntax=docker/dockerfile:1
#
# factorwatch container image.
#
#   docker build -t factorwatch .
#   docker run -p 8080:8080 -v factorwatch-data:/var/lib/factorwatch \
#       -e FACTORWATCH_OKTA_SECRETS_FILE=/run/secrets/okta factorwatch
#
# Okta only calls HTTPS URLs with a publicly trusted certificate, and this image
# serves plain HTTP: put a TLS-terminating load balancer or reverse proxy in
# front of it (see docs/okta-setup.md).

# ---------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------
# Same Debian release as the runtime stage, so the binary links against the
# glibc it will find at run time. The 1.95 tag matches `rust-version` in
# Cargo.toml and the toolchain the pinned dependencies are known to build with.
FROM rust:1.95-bookworm AS builder

WORKDIR /build

# Dependency layer: built from the manifest and lockfile alone, so it is reused
# for as long as Cargo.toml and Cargo.lock do not change, and editing our own
# source does not recompile a few hundred crates.
COPY Cargo.toml Cargo.lock ./
# Empty crate roots so that cargo has something to compile: main.rs for the
# `factorwatch` binary, lib.rs for the library the binary and tests use.
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real source. src/ and rules/ (the built-in Sigma rules are compiled into
# the binary with include_str!) are all `cargo build` needs.
COPY src ./src
COPY rules ./rules
# COPY keeps the modification times of the build context, which can be older
# than the placeholder artifacts built above; cargo would then consider the
# crate fresh and ship the empty `fn main() {}`. Touching the crate roots forces
# the rebuild of our crate (and only our crate).
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/factorwatch /factorwatch

# ---------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates: the HTTPS sinks (reqwest with rustls) verify the certificates
# of Slack, PagerDuty, SQS and webhook receivers against the system roots.
# Nothing else is installed: no shell tools are needed at run time, and every
# package is one more thing to patch.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed, high uid/gid that does not collide with users on the host or in
# common base images, so volume ownership and Kubernetes `runAsUser` policies
# can name it. No home directory and no login shell: it only runs the service.
RUN groupadd --system --gid 10001 factorwatch \
    && useradd --system --uid 10001 --gid factorwatch \
        --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        factorwatch

COPY --from=builder /factorwatch /usr/local/bin/factorwatch

# The default rules are compiled into the binary. Your own rules: mount them
# read-only (a compromised process must not rewrite its rules) and list the
# folder in `[rules] paths` of a config file named by FACTORWATCH_CONFIG.

# The spool directory must exist and belong to the service user *before* the
# VOLUME instruction: Docker seeds a new named volume from the image's
# directory, ownership included, and discards changes made to a volume path
# after VOLUME is declared.
RUN mkdir -p /var/lib/factorwatch \
    && chown factorwatch:factorwatch /var/lib/factorwatch \
    && chmod 0750 /var/lib/factorwatch

# Listen on every interface: inside a container, 127.0.0.1 is unreachable from
# the published port.
ENV FACTORWATCH_LISTEN=0.0.0.0:8080
# /metrics and the detailed /readyz, apart from the hook port, for a Prometheus on
# the container's network; publish it (-p) only to your monitoring network.
ENV FACTORWATCH_OPS_LISTEN=0.0.0.0:8082
# The spool (a batch is acknowledged to Okta only after it is fsynced here) and
# the outbox. It must outlive the container, or accepted events are lost.
ENV FACTORWATCH_DATA_DIR=/var/lib/factorwatch

VOLUME ["/var/lib/factorwatch"]

USER factorwatch:factorwatch

EXPOSE 8080 8082

# The image has no curl or wget, so the binary checks itself: `healthcheck`
# GETs /healthz on FACTORWATCH_LISTEN and exits non-zero unless it answers 200.
# --timeout stays under Okta's 3 s delivery timeout: a server that cannot
# answer its own health check in time is not answering Okta either.
# --start-period leaves time to open the spool and compile the rules.
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["factorwatch", "healthcheck"]

# Exec form: factorwatch runs as PID 1 and receives SIGTERM from `docker stop`
# directly (no shell in between), so it can stop accepting requests and finish
# the group commit in flight before exiting.
ENTRYPOINT ["factorwatch"]
CMD ["serve"]
