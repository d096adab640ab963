//! Log set-up of the Lambda functions: one JSON object per line (CloudWatch Logs Insights reads the
//! fields), at the level the function's configuration asks for.
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (Lambda's "advanced logging controls": `TRACE`,
//! `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`), else from `RUST_LOG` as `target=level` directives
//! (`info,shared=debug`), else `INFO`. A value that does not parse never stops the function: it logs
//! at `INFO` and says which variable it ignored.
//!
//! Only our own crates log below `INFO`. Libraries are capped at `INFO` whatever is asked: at
//! `DEBUG`/`TRACE` the HTTP and AWS SDK layers log request and response contents, which is where
//! secrets travel (Secrets Manager answers, session tokens, Kasm keys).

use tracing_subscriber::filter::{LevelFilter, Targets};

/// Lambda's log level variable.
pub const LAMBDA_LOG_LEVEL_ENV: &str = "AWS_LAMBDA_LOG_LEVEL";

/// Installs the JSON subscriber on stdout (Lambda ships stdout to CloudWatch Logs), remembered secrets
/// scrubbed from every line ([`crate::http::ScrubLines`]). Call once, first.
pub fn init_function_logging() {
    let (filter, problem) =
        log_filter(std::env::var(LAMBDA_LOG_LEVEL_ENV).ok().as_deref(), std::env::var("RUST_LOG").ok().as_deref());
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Every line through the scrubber: a secret echoed by a server in any encoding never reaches
    // CloudWatch (issue 21).
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .without_time()
        .with_writer(|| crate::http::ScrubLines::new(std::io::stdout()));
    let _ = tracing_subscriber::registry().with(filter).with(json).try_init();
    if let Some(p) = problem {
        tracing::warn!("{p}");
    }
}

/// Crates whose logs may go below `INFO` (ours). `Targets` matches by name prefix; no dependency's
/// name starts with one of these (a test checks `Cargo.lock`).
const OUR_CRATES: [&str; 6] =
    ["shared", "scale_evaluator", "provisioner", "reaper", "windows_password_fetcher", "kasm_autoscale"];

fn is_ours(target: &str) -> bool {
    OUR_CRATES.iter().any(|c| target == *c || target.starts_with(&format!("{c}::")))
}

/// `asked` with every library's level capped at `INFO` (ours keep what was asked). Targets no
/// directive names log at the bare level given, or at `INFO` (`RUST_LOG=shared::store=debug` keeps the
/// rest at `INFO` rather than silencing it).
fn capped(asked: &Targets) -> Targets {
    let default = asked.default_level().unwrap_or(LevelFilter::INFO);
    let mut out = Targets::new().with_default(default.min(LevelFilter::INFO));
    for c in OUR_CRATES {
        if !asked.iter().any(|(t, _)| t == c) {
            out = out.with_target(c, default);
        }
    }
    for (t, level) in asked.iter() {
        out = out.with_target(t, if is_ours(t) { level } else { level.min(LevelFilter::INFO) });
    }
    out
}

/// The filter for the two variables' values, and what was wrong with them (logged, not fatal).
pub fn log_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> (Targets, Option<String>) {
    let (filter, problem) = asked_filter(lambda_level, rust_log);
    (capped(&filter), problem)
}

fn asked_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> (Targets, Option<String>) {
    let default = Targets::new().with_default(LevelFilter::INFO);
    if let Some(v) = lambda_level.map(str::trim).filter(|v| !v.is_empty()) {
        let level = match v.to_ascii_uppercase().as_str() {
            "TRACE" => LevelFilter::TRACE,
            "DEBUG" => LevelFilter::DEBUG,
            "INFO" => LevelFilter::INFO,
            "WARN" => LevelFilter::WARN,
            "ERROR" | "FATAL" => LevelFilter::ERROR,
            _ => {
                let why = format!(
                    "{LAMBDA_LOG_LEVEL_ENV}={v:?} is not a log level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL); logging at INFO"
                );
                return (default, Some(why));
            }
        };
        return (Targets::new().with_default(level), None);
    }
    if let Some(v) = rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        return match v.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (default, Some(format!("RUST_LOG={v:?} does not parse ({e}); logging at INFO"))),
        };
    }
    (default, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled(t: &Targets, target: &str, level: Level) -> bool {
        t.would_enable(target, &level)
    }

    #[test]
    fn lambda_level_wins_and_fatal_is_error() {
        let (t, p) = log_filter(Some("debug"), Some("error"));
        assert!(p.is_none());
        assert!(enabled(&t, "shared::app", Level::DEBUG));
        assert!(!enabled(&t, "shared::app", Level::TRACE));
        let (t, _) = log_filter(Some("FATAL"), None);
        assert!(enabled(&t, "x", Level::ERROR) && !enabled(&t, "x", Level::WARN));
    }

    #[test]
    fn rust_log_directives_apply_without_the_lambda_level() {
        let (t, p) = log_filter(None, Some("warn,shared=debug"));
        assert!(p.is_none());
        assert!(enabled(&t, "shared::store", Level::DEBUG));
        assert!(!enabled(&t, "aws_smithy_runtime", Level::INFO));
        assert!(enabled(&t, "aws_smithy_runtime", Level::WARN));
    }

    #[test]
    fn libraries_never_log_below_info() {
        let (t, _) = log_filter(Some("TRACE"), None);
        assert!(enabled(&t, "shared::secrets::aws", Level::TRACE));
        assert!(enabled(&t, "reaper", Level::TRACE));
        assert!(!enabled(&t, "aws_smithy_runtime::client::orchestrator", Level::DEBUG));
        assert!(enabled(&t, "hyper_util", Level::INFO));
        let (t, _) = log_filter(None, Some("aws_smithy_runtime=trace,reqwest=debug,shared::store=warn"));
        assert!(!enabled(&t, "aws_smithy_runtime", Level::DEBUG));
        assert!(enabled(&t, "aws_smithy_runtime", Level::INFO));
        assert!(!enabled(&t, "reqwest::connect", Level::DEBUG));
        assert!(!enabled(&t, "shared::store", Level::INFO) && enabled(&t, "shared::store", Level::WARN));
        assert!(enabled(&t, "shared::app", Level::INFO) && !enabled(&t, "shared::app", Level::DEBUG));
        let (t, _) = log_filter(None, Some("off"));
        assert!(!enabled(&t, "shared", Level::ERROR) && !enabled(&t, "hyper", Level::ERROR));
    }

    #[test]
    fn no_dependency_shares_a_name_prefix_with_our_crates() {
        let lock = include_str!("../../../Cargo.lock");
        for line in lock.lines().filter_map(|l| l.strip_prefix("name = \"")) {
            let name = line.trim_end_matches('"').replace('-', "_");
            if OUR_CRATES.contains(&name.as_str()) || name == "integration_tests" {
                continue;
            }
            assert!(!OUR_CRATES.iter().any(|c| name.starts_with(c)), "{name} would be logged as ours");
        }
    }

    #[test]
    fn nothing_set_is_info() {
        let (t, p) = log_filter(None, Some("  "));
        assert!(p.is_none());
        assert!(enabled(&t, "x", Level::INFO) && !enabled(&t, "x", Level::DEBUG));
    }

    #[test]
    fn bad_values_fall_back_to_info_and_say_which_variable() {
        let (t, p) = log_filter(Some("LOUD"), None);
        assert!(p.unwrap().contains("AWS_LAMBDA_LOG_LEVEL=\"LOUD\""));
        assert!(enabled(&t, "x", Level::INFO) && !enabled(&t, "x", Level::DEBUG));
        let (t, p) = log_filter(None, Some("shared=chatty"));
        assert!(p.unwrap().starts_with("RUST_LOG=\"shared=chatty\" does not parse"));
        assert!(enabled(&t, "x", Level::INFO));
    }
}
