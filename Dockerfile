# podflow's image: both binaries, podflow-exporter (the probe) and podflow-collector (collector and
# sidecar-injection webhook), in /usr/local/bin. The Helm chart (charts/podflow) runs them by path.
#
#   docker build -t ghcr.io/podflow/podflow:0.1.0 .
#
# It runs as uid 65532 by default. Capture needs CAP_NET_RAW (and conntrack CAP_NET_ADMIN): either run
# the probe as root with those capabilities added (what the chart does), or as uid 65532 with them added
# to the container's bounding set and privilege escalation allowed: podflow-exporter carries them as file
# capabilities (cap_net_raw,cap_net_admin+eip), which the kernel grants on exec unless no_new_privs is set.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpcap-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p podflow-exporter -p podflow-collector

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpcap0.8 ca-certificates libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/podflow-exporter /usr/local/bin/podflow-exporter
COPY --from=build /src/target/release/podflow-collector /usr/local/bin/podflow-collector
RUN setcap cap_net_raw,cap_net_admin+eip /usr/local/bin/podflow-exporter \
    && apt-get purge -y libcap2-bin && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*
USER 65532:65532
CMD ["podflow-collector", "--help"]
