# DAARION's image: the one binary (the web UI is built into it from
# web/dist), on a small Debian with the CA roots and PostgreSQL's client
# (`daarion backup` of a distributed city runs pg_dump). Non-root.
#
#   docker build -t daarion .
#   docker run -p 8080:8080 -v daarion:/var/lib/daarion daarion
#
# The same image runs every shape: `up` by default, `serve <service>` and
# `gateway` in deploy/compose. (This machine has no Docker daemon: the
# image has not been built here.)
FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p daarion \
    && cp target/release/daarion /usr/local/bin/daarion

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/daarion --shell /usr/sbin/nologin daarion \
    && install -d -o daarion -g daarion -m 0750 /var/lib/daarion
COPY --from=build /usr/local/bin/daarion /usr/local/bin/daarion
USER daarion
WORKDIR /var/lib/daarion
ENV DAARION__DATA_DIR=/var/lib/daarion
EXPOSE 8080
VOLUME ["/var/lib/daarion"]
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD ["daarion", "health"]
ENTRYPOINT ["daarion"]
CMD ["up", "--listen", "0.0.0.0:8080"]
