//! `kasm-autoscale`: validate, schema, render, plan, simulate, run. `main` only wires.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod schema;
mod validate;

/// Serverless autoscaling for Kasm Workspaces.
#[derive(Debug, Parser)]
#[command(name = "kasm-autoscale", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check config files and print every problem (exit 1 when there is one).
    Validate {
        /// Config files (YAML or JSON), checked together as one deployment.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of config files.
    Schema,
}

fn main() {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let code = match cli.command {
        Command::Validate { files } => validate::run(&files, &mut out),
        Command::Schema => schema::run(&mut out),
    };
    std::process::exit(code);
}
