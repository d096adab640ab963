//! `kasm-autoscale`: validate, schema, render, plan, simulate, run. `main` only wires.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod render;

#[derive(Debug, Parser)]
#[command(name = "kasm-autoscale", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render a startup-script template exactly as Kasm would (unset placeholders render `None`).
    Render {
        /// The template file.
        template_file: PathBuf,
        /// A placeholder value (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
}

fn main() {
    let code = match Cli::parse().command {
        Command::Render { template_file, vars } => {
            render::run(&template_file, &vars, &mut std::io::stdout().lock(), &mut std::io::stderr().lock())
        }
    };
    std::process::exit(code);
}
