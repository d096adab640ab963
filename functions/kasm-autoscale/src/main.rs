//! `kasm-autoscale`: the operator's tool. `main` only parses arguments and wires; each command
//! lives in its own module as a plain function returning the exit code.

mod logging;
mod simulate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Serverless autoscaling for Kasm Workspaces: validate, simulate, plan, run.
#[derive(Debug, Parser)]
#[command(name = "kasm-autoscale", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Json)]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a trace through the real engine, lifecycle and store against a simulated provider and
    /// Kasm cluster on a virtual clock; print a timeline and summary and write chart.svg.
    Simulate {
        /// The trace file (JSON; format in the README).
        trace: PathBuf,
        /// Folder for chart.svg (created if missing).
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Print one JSON object instead of the timeline.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Simulate { trace, out, json } => {
            logging::init(cli.log_format, "warn");
            simulate::run(&trace, &out, json, &mut std::io::stdout(), &mut std::io::stderr())
        }
    };
    std::process::exit(code);
}
