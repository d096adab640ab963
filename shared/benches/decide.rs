//! Benchmark of `engine::decide` (being written).
fn main() {}
