# The kfop container image: one static-ish binary on a small Debian base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin kfop

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/kfop /usr/local/bin/kfop
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kfop"]
