//! `kasm-autoscale simulate TRACE [--out DIR] [--json | --verbose] [--predictive off|on|forecast_only]
//! [--boot-seconds N]`: the report on stdout, `DIR/chart.svg` and `DIR/samples.csv`.

use std::io::Write;
use std::path::Path;

use shared::sim;

/// How much `simulate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Timeline (one short line per event) and summary.
    Text,
    /// The timeline with each decision's actions and reasons.
    Verbose,
    /// One JSON object: the summary.
    Json,
}

/// What the command line changes in a trace, to compare runs of one trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides<'a> {
    /// Replaces every config's `predictive_scaling`.
    pub predictive: Option<&'a str>,
    /// Replaces the provider's `boot_seconds`, without jitter: every VM boots in exactly this long.
    pub boot_seconds: Option<u32>,
}

/// Runs the simulation; exit 0, 2 for a malformed trace or config (or `--predictive` value), 1 if
/// the cap was ever exceeded. The report goes to `stdout`; errors (and the logs, set up by the
/// caller) to stderr.
pub fn run(
    trace: &Path,
    out: &Path,
    output: Output,
    overrides: Overrides,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let mut loaded = match sim::load(trace) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            return 2;
        }
    };
    if let Some(secs) = overrides.boot_seconds {
        loaded.trace.provider.boot_seconds = secs;
        loaded.trace.provider.boot_jitter_seconds = 0;
    }
    if let Some(mode) = overrides.predictive {
        let Ok(mode) = serde_json::from_value::<shared::config::PredictiveScaling>(serde_json::json!(mode)) else {
            let _ = writeln!(stderr, "error: --predictive: must be off, on or forecast_only, not {mode:?}");
            return 2;
        };
        for a in &mut loaded.configs.autoscale_configs {
            a.predictive_scaling = mode;
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(stderr, "error: failed to start the runtime: {e}");
            return 1;
        }
    };
    let report = rt.block_on(sim::run(&loaded));
    let (chart, samples) = (out.join("chart.svg"), out.join("samples.csv"));
    for (path, text) in [(&chart, sim::chart::svg(&report)), (&samples, sim::samples_csv(&report))] {
        if let Err(e) = std::fs::create_dir_all(out).and_then(|_| std::fs::write(path, text)) {
            let _ = writeln!(stderr, "error: failed to write {}: {e}", path.display());
            return 1;
        }
    }
    if output == Output::Json {
        let _ = writeln!(stdout, "{}", serde_json::to_string(&report.summary).unwrap_or_default());
    } else {
        let _ = write!(stdout, "{}", sim::render_text(&report, output == Output::Verbose));
        let _ = writeln!(stdout, "chart: {}", chart.display());
        let _ = writeln!(stdout, "samples: {}", samples.display());
    }
    if report.summary.max_instances_exceeded { 1 } else { 0 }
}
