# nvelox appliance image: a static musl binary in an empty (`scratch`) image.
#
#   docker build -t nvelox .
#   docker run --rm --network host -v /etc/nvelox:/etc/nvelox:ro nvelox
#   docker run --rm nvelox --version
#
# The shipped conf/nvelox.yaml binds 127.0.0.1 (inside the container that is
# the container's own loopback): mount your own configuration over
# /etc/nvelox/nvelox.yaml, binding ":PORT" or "0.0.0.0:PORT".
# The image has no /etc/passwd: leave `server.user`/`group` unset and use
# `USER`/`--user` instead; ports below 1024 then need
# `--cap-add NET_BIND_SERVICE` or `--user 0`.
#
# For aarch64: --build-arg TARGET=aarch64-unknown-linux-musl (the build stage
# installs the Debian cross linker; .cargo/config.toml names it).

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS build
ARG TARGET=x86_64-unknown-linux-musl
RUN rustup target add "${TARGET}" \
 && if [ "${TARGET}" = aarch64-unknown-linux-musl ]; then \
        apt-get update && apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu \
        && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target "${TARGET}" --bin nvelox \
 && cp "target/${TARGET}/release/nvelox" /nvelox \
 && if [ "${TARGET}" = x86_64-unknown-linux-musl ]; then /nvelox -c conf/nvelox.yaml --check; fi

FROM scratch
COPY --from=build /nvelox /usr/local/bin/nvelox
COPY conf/nvelox.yaml /etc/nvelox/nvelox.yaml
USER 65534:65534
EXPOSE 8080/tcp 8053/udp
ENTRYPOINT ["/usr/local/bin/nvelox"]
CMD ["-c", "/etc/nvelox/nvelox.yaml"]
