//! podflow-exporter: the probe.
fn main() {}
