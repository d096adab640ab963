//! `kasm-autoscale`: validate, schema, render, plan, simulate, run. `main` only wires.

fn main() {
    println!("kasm-autoscale");
}
