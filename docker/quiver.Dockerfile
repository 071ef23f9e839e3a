# The quiver binary (`quiver serve`, `quiver produce`, ...) in a small runtime image.
# Build from the repository root: docker build -f docker/quiver.Dockerfile -t quiver:0.1.0 .

# Bookworm on both stages: the binary links against the builder's glibc.
FROM rust:1.95.0-slim-bookworm AS build
# rdkafka's cmake-build compiles librdkafka from source (Debian's is too old for
# rdkafka-sys); its build includes curl's header even though no feature uses curl. The
# proto is compiled by protox in pure Rust, so there is no protoc here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake g++ make libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY rust rust
COPY proto proto
COPY pipelines pipelines
# The caches keep crates.io downloads and compiled dependencies between builds; the binary
# is copied out because the target cache is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin quiver \
    && cp target/release/quiver /usr/local/bin/quiver

FROM debian:12.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin quiver
COPY --from=build /usr/local/bin/quiver /usr/local/bin/quiver
USER 10001
# Flight (gRPC) and HTTP (/metrics, /healthz)
EXPOSE 50051 9464
ENTRYPOINT ["quiver"]
CMD ["serve"]
