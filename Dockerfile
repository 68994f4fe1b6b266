# One image with the five programs: route-lookup, cache-node, mailbox-stub, proxy, zmprov.
# docker-compose.yml runs each service from it with its own command.
#
#   docker build -t zproxy .
#   docker run --rm zproxy proxy --help

# ---- build ------------------------------------------------------------------------------
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# The image's own toolchain builds it: rust-toolchain.toml (which asks rustup for the
# "stable" channel by name) stays out of the build context (.dockerignore).
ENV CARGO_TERM_COLOR=never

# Dependencies first, from the manifests and the lock file alone, with empty crates in
# place of ours (and an empty build script for proto, so that its build dependencies are
# built here too): this layer is rebuilt only when a manifest or Cargo.lock changes, not
# when a .proto file or any source does.
COPY Cargo.toml Cargo.lock ./
COPY codec/Cargo.toml codec/
COPY common/Cargo.toml common/
COPY cache-node/Cargo.toml cache-node/
COPY loadgen/Cargo.toml loadgen/
COPY proto/Cargo.toml proto/
COPY route-lookup/Cargo.toml route-lookup/
COPY zmprov/Cargo.toml zmprov/
COPY mailbox-stub/Cargo.toml mailbox-stub/
COPY proxy/Cargo.toml proxy/
RUN set -eux; \
    for c in codec common cache-node loadgen proto route-lookup zmprov mailbox-stub proxy; do \
        mkdir -p "$c/src"; \
        echo '//! placeholder' > "$c/src/lib.rs"; \
        printf '//! placeholder\nfn main() {}\n' > "$c/src/main.rs"; \
    done; \
    printf '//! placeholder\nfn main() {}\n' > proto/build.rs; \
    mkdir -p loadgen/src/bin; \
    printf '//! placeholder\nfn main() {}\n' > loadgen/src/bin/mc-loadgen.rs; \
    printf '//! placeholder\nfn main() {}\n' > loadgen/src/bin/imap-loadgen.rs; \
    cargo build --release --locked -p proxy -p route-lookup -p cache-node -p mailbox-stub -p zmprov

# Then our sources. Their files are older than the placeholders' build outputs, so touch
# them, or cargo would keep the placeholders.
COPY . .
RUN set -eux; \
    find codec common cache-node loadgen proto route-lookup zmprov mailbox-stub proxy \
        \( -name '*.rs' -o -name '*.proto' \) -exec touch {} +; \
    cargo build --release --locked -p proxy -p route-lookup -p cache-node -p mailbox-stub -p zmprov; \
    mkdir -p /out; \
    cp target/release/proxy target/release/route-lookup target/release/cache-node \
       target/release/mailbox-stub target/release/zmprov /out/

# ---- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim
# curl for the health checks, openssl for the proxy's demo certificate.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl openssl; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --system --uid 10001 --user-group --home-dir /var/lib/zproxy --create-home \
        --shell /usr/sbin/nologin zproxy; \
    install -d -o zproxy -g zproxy /var/lib/zproxy/demo-certs
COPY --from=build /out/ /usr/local/bin/
COPY deploy/docker/healthcheck deploy/docker/proxy-entrypoint deploy/docker/seed /usr/local/bin/
COPY deploy/demo/seed.zmprov /etc/zproxy/seed.zmprov
USER zproxy
WORKDIR /var/lib/zproxy
# Checks whichever program this container runs (see deploy/docker/healthcheck).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 CMD ["healthcheck"]
CMD ["proxy", "--help"]
