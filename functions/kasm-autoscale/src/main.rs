//! `kasm-autoscale`: the operator's tool. `main` only parses arguments and wires; each command
//! lives in its own module as a plain function returning the exit code.

mod apply;
mod configs;
mod import;
mod logging;
mod plan;
mod preflight;
mod render;
mod run;
mod schema;
mod simulate;
mod status;
mod validate;

use clap::{Parser, Subcommand};
use shared::config::KasmAuthMode;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The forms `--store` takes, in every command that has it (`shared::wiring::open_store_async`).
macro_rules! store_forms {
    () => {
        "`dynamodb://TABLE` (the AWS deployment: a DynamoDB table, with the default AWS credentials and \
         region), `embedded:PATH` or a plain PATH (a state file, as `run --state` writes), or `memory:` \
         (empty, nothing kept)"
    };
}

/// Serverless autoscaling for Kasm Workspaces, on AWS Lambda or as a local daemon.
///
/// Creates Docker Agent and server-pool VMs when free capacity falls below the standby asked for, and
/// destroys idle ones after a backoff.
#[derive(Debug, Parser)]
#[command(name = "kasm-autoscale", version)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Json)]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check config files and print every problem.
    ///
    /// One line per problem, `FILE: <config>.<field>: <what is wrong>`; exit 1 if any.
    Validate {
        /// Config files (YAML or JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the config file format.
    Schema,
    /// Render a startup-script template exactly as Kasm would.
    ///
    /// Python `str.format` semantics; unset placeholders render `None`. Exit 1 naming the placeholder and
    /// line when it cannot.
    Render {
        /// The template file.
        template: PathBuf,
        /// A placeholder value, `NAME=VALUE` (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
    /// Run a trace on a virtual clock: timeline, summary, chart.svg and samples.csv.
    ///
    /// The trace runs through the real engine, lifecycle and store against a simulated provider and Kasm
    /// cluster. The timeline has one short line per event (`08:15  pool: +2 agents — free cores 6 <
    /// standby 16`); `--verbose` adds each decision's actions and reasons, `--json` prints the summary as
    /// one object. The report goes to stdout, logs to stderr. Exit 2 for a malformed trace or config.
    Simulate {
        /// The trace file (JSON; format in the README).
        trace: PathBuf,
        /// Folder for chart.svg and samples.csv (created if missing).
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Print one JSON object instead of the timeline.
        #[arg(long, conflicts_with = "verbose")]
        json: bool,
        /// Run every autoscale config with this `predictive_scaling` (`off`, `on`, `forecast_only`)
        /// instead of its own, to compare reactive and predictive on one trace.
        #[arg(long, value_name = "MODE")]
        predictive: Option<String>,
        /// Boot every VM in exactly this many seconds instead of the trace's `boot_seconds` (and
        /// its jitter). With 0 and `--predictive off`: what scaling on demand alone would use if
        /// VMs booted at once: about the least an autoscaler that keeps these configs' standby and
        /// backoff can use (VM-hours; `booting_vm_hours` is what boots add to it).
        #[arg(long, value_name = "SECONDS")]
        boot_seconds: Option<u32>,
        /// Under each decision, its actions (claim by claim) and every reason of the plan; logs at
        /// `warn` (default: `error` only, on stderr).
        #[arg(long, short)]
        verbose: bool,
    },
    /// Show what the evaluator would do now, and why, changing nothing.
    ///
    /// Per config the inputs (free/standby capacity, VMs by state, sessions), the plan and its reasons.
    /// Exit 0, or 3 when the plan would change something, 1 on error.
    Plan {
        /// Config files (default: the configs saved in the store).
        #[arg(long = "config")]
        config: Vec<PathBuf>,
        #[arg(long, value_name = "STORE", help = concat!("The store (default `memory:`, no claims): ", store_forms!(), "."))]
        store: Option<String>,
        /// Only this autoscale config.
        #[arg(long)]
        autoscale_config: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the local daemon: evaluate, provision, reap; webhooks, /healthz, /metrics.
    Run {
        /// Config files.
        #[arg(long = "config", required = true)]
        config: Vec<PathBuf>,
        /// The state file (claims survive restarts).
        #[arg(long, default_value = "kasm-autoscale-state.redb")]
        state: PathBuf,
        /// Address of the HTTP listener (webhooks, /healthz, /metrics).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// Serve /metrics (and /healthz) on this address instead of --listen, e.g. to keep them off a
        /// webhook port that is exposed. See also settings.webhook.metrics_token.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Seconds between evaluations (default: settings.evaluation_interval).
        #[arg(long)]
        interval: Option<u64>,
    },
    /// Check each VM-provider config against its API, read-only.
    ///
    /// Credentials, privileges, images/templates, networks, free VMIDs, script size: one
    /// `PASS`/`FAIL <config>.<check>: <detail>` line each. Exit 0 when all pass.
    Preflight {
        /// Config files.
        #[arg(long = "config", required = true)]
        config: Vec<PathBuf>,
    },
    /// Validate config files and write them to the store, showing the diff.
    ///
    /// The diff against the stored configs: `+ added`, `- removed`, `~ changed: fields` (never values);
    /// invalid files write nothing (exit 1). The Lambda functions read their configs from the table.
    Apply {
        /// Config files (YAML or JSON), applied as one deployment.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_name = "STORE", help = concat!("The store: ", store_forms!(), "."))]
        store: String,
        /// Show the diff, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Create the DynamoDB table when it does not exist (normally the stack creates it).
        #[arg(long)]
        create_table: bool,
    },
    /// Write a config file from a running Kasm's own autoscale settings.
    ///
    /// Reads the autoscale, VM-provider and DNS-provider configs, server pools and schedules through the
    /// admin API (read-only); secrets become `env:` references, listed at the end. Exit 0 when the file
    /// validates, 1 otherwise or on any Kasm error.
    Import {
        /// Base URL of the Kasm manager, e.g. `https://kasm.example.com`.
        #[arg(long)]
        kasm_url: String,
        /// The API key (Settings → Developers); its secret is read from the environment.
        #[arg(long)]
        api_key: String,
        /// The environment variable holding the API key's secret.
        #[arg(long, default_value = "KASM_API_KEY_SECRET")]
        api_key_secret_env: String,
        /// How the key is sent: `body` (default), `header` (`api-key` headers) or `basic`.
        #[arg(long, value_parser = ["body", "header", "basic"], default_value = "body")]
        auth_mode: String,
        /// Do not verify the manager's TLS certificate (a lab with a self-signed certificate).
        #[arg(long)]
        insecure: bool,
        /// Write the config file here (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show the VMs we own, by config and state, with age and last error.
    Status {
        #[arg(
            long,
            value_name = "STORE",
            default_value = "kasm-autoscale-state.redb",
            help = concat!("The store: ", store_forms!(), ".")
        )]
        store: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    // Everything printed goes through the scrubber: a secret a server echoed back (in any encoding)
    // is replaced before it reaches the terminal or a file (issue 21).
    let (mut stdout, mut stderr) =
        (shared::http::ScrubLines::new(std::io::stdout()), shared::http::ScrubLines::new(std::io::stderr()));
    let (out, err) = (&mut stdout, &mut stderr);
    let code = match cli.command {
        Command::Validate { files } => validate::run(&files, out),
        Command::Schema => schema::run(out),
        Command::Render { template, vars } => render::run(&template, &vars, out, err),
        Command::Simulate { trace, out: dir, json, predictive, boot_seconds, verbose } => {
            // The timeline already shows what the logs would (simulated provider errors among them).
            logging::init(cli.log_format, if verbose { "warn" } else { "error" });
            let output = match (json, verbose) {
                (true, _) => simulate::Output::Json,
                (false, true) => simulate::Output::Verbose,
                (false, false) => simulate::Output::Text,
            };
            let overrides = simulate::Overrides { predictive: predictive.as_deref(), boot_seconds };
            simulate::run(&trace, &dir, output, overrides, out, err)
        }
        Command::Plan { config, store, autoscale_config, json } => {
            logging::init(cli.log_format, "warn");
            block_on(plan::run(&config, store.as_deref(), autoscale_config.as_deref(), json, out, err))
        }
        Command::Run { config, state, listen, admin_listen, interval } => {
            logging::init(cli.log_format, "info");
            block_on(run::run(&config, &state, run::Listen { main: listen, admin: admin_listen }, interval, err))
        }
        Command::Preflight { config } => {
            logging::init(cli.log_format, "warn");
            block_on(preflight::run(&config, out, err))
        }
        Command::Apply { files, store, dry_run, create_table } => {
            block_on(apply::run(&files, &store, dry_run, create_table, out, err))
        }
        Command::Status { store, json } => block_on(status::run(&store, json, out, err)),
        Command::Import { kasm_url, api_key, api_key_secret_env, auth_mode, insecure, out: file } => {
            logging::init(cli.log_format, "warn");
            let args = import::Args {
                kasm_url: &kasm_url,
                api_key: &api_key,
                api_key_secret_env: &api_key_secret_env,
                auth_mode: match auth_mode.as_str() {
                    "basic" => KasmAuthMode::Basic,
                    "header" => KasmAuthMode::Header,
                    _ => KasmAuthMode::Body,
                },
                insecure,
                out: file.as_deref(),
            };
            block_on(import::run(&args, out, err))
        }
    };
    // `exit` runs no destructors: what is left of a line goes out now.
    let _ = std::io::Write::flush(&mut stdout);
    let _ = std::io::Write::flush(&mut stderr);
    std::process::exit(code);
}

fn block_on(f: impl std::future::Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("error: failed to start the runtime: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn help_is_well_formed_with_a_one_line_summary_per_command() {
        super::Cli::command().debug_assert();
        let mut cmd = super::Cli::command();
        cmd.build();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            assert!(!about.is_empty(), "{} has no summary", sub.get_name());
            assert!(!about.contains('\n') && about.len() <= 80, "{}: not one short line: {about:?}", sub.get_name());
        }
    }
}
