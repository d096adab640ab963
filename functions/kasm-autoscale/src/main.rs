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
    /// Check config files; print every problem as `FILE: <config>.<field>: <what is wrong>`.
    Validate {
        /// Config files (YAML or JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the config file format.
    Schema,
    /// Render a startup-script template exactly as Kasm would (Python `str.format` semantics);
    /// unset placeholders render `None`. Exit 1 naming the placeholder and line when it cannot.
    Render {
        /// The template file.
        template: PathBuf,
        /// A placeholder value, `NAME=VALUE` (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
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
        /// Run every autoscale config with this `predictive_scaling` (`off`, `on`, `forecast_only`)
        /// instead of its own, to compare reactive and predictive on one trace.
        #[arg(long, value_name = "MODE")]
        predictive: Option<String>,
    },
    /// Show what the evaluator would do now, with its inputs and reasons, changing nothing.
    /// Exit 0, or 3 when the plan would change something.
    Plan {
        /// Config files (default: the configs saved in the store).
        #[arg(long = "config")]
        config: Vec<PathBuf>,
        /// The store: a state file path, `embedded:PATH`, or `memory:` (default: memory, no claims).
        #[arg(long)]
        store: Option<String>,
        /// Only this autoscale config.
        #[arg(long)]
        autoscale_config: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the local daemon: scheduled evaluations, provisioning, reaping, webhooks, /healthz, /metrics.
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
    /// Check each VM-provider config against its endpoint (credentials, privileges, template, free
    /// VMIDs, script size); one `PASS`/`FAIL <config>.<check>: <detail>` line each. Exit 0 when all pass.
    Preflight {
        /// Config files.
        #[arg(long = "config", required = true)]
        config: Vec<PathBuf>,
    },
    /// Validate config files and store them: prints the diff against the stored configs
    /// (`+ added`, `- removed`, `~ changed: fields`); invalid files write nothing (exit 1).
    Apply {
        /// Config files (YAML or JSON), applied as one deployment.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The store: `dynamodb://TABLE` (default AWS configuration), a state file path or `embedded:PATH`.
        #[arg(long)]
        store: String,
        /// Show the diff, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Create the DynamoDB table when it does not exist (normally the stack creates it).
        #[arg(long)]
        create_table: bool,
    },
    /// Read a running Kasm's autoscale, VM-provider and DNS-provider configs, server pools and schedules
    /// through its admin API and write a config file of ours (secrets become `env:` references, listed at
    /// the end). Exit 0 when the file validates, 1 otherwise or on any Kasm error.
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
        /// The store: a state file path or `embedded:PATH`.
        #[arg(long, default_value = "kasm-autoscale-state.redb")]
        store: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let (out, err) = (&mut std::io::stdout(), &mut std::io::stderr());
    let code = match cli.command {
        Command::Validate { files } => validate::run(&files, out),
        Command::Schema => schema::run(out),
        Command::Render { template, vars } => render::run(&template, &vars, out, err),
        Command::Simulate { trace, out: dir, json, predictive } => {
            logging::init(cli.log_format, "warn");
            simulate::run(&trace, &dir, json, predictive.as_deref(), out, err)
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
