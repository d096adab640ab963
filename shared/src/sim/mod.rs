//! The simulator behind `kasm-autoscale simulate`.
