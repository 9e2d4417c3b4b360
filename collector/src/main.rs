//! podflow-collector.
fn main() {}
