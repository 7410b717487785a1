# One image for every role: `cmdbus api|worker|notifier|migrate|all`.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY tools tools
# A workspace member (the example worker): cargo reads every member's manifest.
COPY examples examples
COPY migrations migrations
COPY web web
# The browser library the binary serves at /v1/client.js (built and committed: no Node here).
COPY clients/js/dist clients/js/dist
RUN cargo build --release --locked -p cmdbus

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 cmdbus
COPY --from=build /src/target/release/cmdbus /usr/local/bin/cmdbus
USER cmdbus
ENV CMDBUS_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["cmdbus"]
CMD ["all"]
