//! The trace format `kasm-autoscale simulate` accepts (documented in the README).

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::config::ConfigSet;

/// A simulation trace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    /// Name shown in the report.
    pub name: String,
    /// Simulated duration.
    pub duration_minutes: u32,
    /// Seconds between two evaluations (one simulation step).
    pub step_seconds: u32,
    /// The configs: a path (relative to the trace file) or an inline config document.
    pub config: TraceConfig,
    /// The simulated provider.
    #[serde(default)]
    pub provider: TraceProvider,
    /// Session arrivals.
    #[serde(default)]
    pub sessions: Vec<SessionBurst>,
    /// Our extension: the simulated start instant (RFC 3339), for schedules. Default Monday
    /// 2026-01-05 00:00 UTC.
    #[serde(default)]
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// Our extension: seed of the boot-jitter generator (runs are reproducible). Default 1.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Where the trace's configs come from: a path (relative to the trace file) or an inline config
/// document. Kept raw so the config validator, not serde's untagged matching, reports what is wrong.
pub type TraceConfig = serde_json::Value;

/// The simulated provider's behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceProvider {
    /// Seconds from create to the VM checking in to Kasm.
    #[serde(default = "default_boot")]
    pub boot_seconds: u32,
    /// Up to this many seconds more, drawn per VM.
    #[serde(default)]
    pub boot_jitter_seconds: u32,
    /// Price of one VM-hour, for the cost estimate.
    #[serde(default)]
    pub hourly_price: f64,
    /// Injected create failures.
    #[serde(default)]
    pub failures: Vec<TraceFailure>,
}

impl Default for TraceProvider {
    fn default() -> Self {
        TraceProvider { boot_seconds: default_boot(), boot_jitter_seconds: 0, hourly_price: 0.0, failures: vec![] }
    }
}

fn default_boot() -> u32 {
    240
}

/// Create failures injected at a minute.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceFailure {
    /// When.
    pub at_minute: u32,
    /// `out_of_capacity`, `rate_limited`, `transient` or `invalid`.
    pub kind: FailureKind,
    /// How many creates fail.
    pub count: u32,
    /// Only this VM-provider config's creates (default: every provider config).
    #[serde(default)]
    pub provider_config: Option<String>,
}

/// An injected failure's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The provider has no capacity for the shape.
    OutOfCapacity,
    /// Throttled.
    RateLimited,
    /// A 5xx / timeout.
    Transient,
    /// The request is invalid (fails the claim for good).
    Invalid,
}

/// `count` sessions arriving at `at_minute`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionBurst {
    /// Arrival minute.
    pub at_minute: u32,
    /// How many sessions.
    pub count: u32,
    /// Cores each (docker agents).
    #[serde(default)]
    pub cores: f64,
    /// Memory each, MB (docker agents).
    #[serde(default)]
    pub memory_mb: f64,
    /// GPUs each (docker agents).
    #[serde(default)]
    pub gpus: f64,
    /// How long each session lasts once started.
    pub duration_minutes: u32,
    /// The autoscale config whose pool serves them.
    pub autoscale_config: String,
    /// The image (workspace) asked for. When a staging config of the autoscale config stages it and a
    /// staged session is ready, the request takes that session at once, as Kasm assigns staged sessions.
    #[serde(default)]
    pub image_id: Option<String>,
    /// Kasm queues these requests while nothing can take them (`requested`, with the autoscale config's
    /// `autoscale_config_id`, as Kasm does while one of its own autoscale configs covers the pool): the
    /// autoscaler sees them, and with `aggressive_scaling` provisions for them. Default false: a request
    /// nothing can take is retried by the user, unseen by the autoscaler.
    #[serde(default)]
    pub queued: bool,
}

/// Most simulation steps in one trace (`duration_minutes` × 60 / `step_seconds`): 30 days at 15 s
/// steps fit; a ten-year trace at 1 s steps is refused before anything is allocated.
pub const MAX_STEPS: u64 = 200_000;
/// Most sessions (the sum of every burst's `count`) in one trace.
pub const MAX_SESSIONS: u64 = 100_000;

/// Why a trace cannot be simulated. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{path}: failed to read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The trace or its config is malformed; names the field.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The field (JSON path).
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A parsed trace with its configs loaded.
#[derive(Debug, Clone)]
pub struct LoadedTrace {
    /// The trace.
    pub trace: Trace,
    /// The configs it runs.
    pub configs: ConfigSet,
    /// Where it was read from.
    pub origin: String,
}

/// Reads a trace file and the config it names.
pub fn load(path: &Path) -> Result<LoadedTrace, TraceError> {
    let text = crate::input::read_text(path, crate::input::MAX_TRACE_BYTES).map_err(|e| match e {
        crate::input::InputError::Read(source) => TraceError::Read { path: path.display().to_string(), source },
        other => {
            TraceError::Invalid { path: path.display().to_string(), field: "trace".into(), message: other.to_string() }
        }
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &path.display().to_string(), &base)
}

/// Parses a trace; config paths resolve against `base`.
pub fn parse(text: &str, origin: &str, base: &Path) -> Result<LoadedTrace, TraceError> {
    let invalid = |field: String, message: String| TraceError::Invalid { path: origin.to_string(), field, message };
    crate::input::check_nesting(text, crate::input::MAX_NESTING).map_err(|e| invalid("trace".into(), e.to_string()))?;
    let de = &mut serde_json::Deserializer::from_str(text);
    let trace: Trace = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        invalid(if field == "." { "trace".into() } else { field }, e.into_inner().to_string())
    })?;
    // Every problem of the config, each naming its field, as `validate` prints them.
    let problems = |ps: Vec<crate::config::validate::Problem>| {
        invalid("config".into(), ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))
    };
    let configs: ConfigSet = match &trace.config {
        serde_json::Value::String(p) => {
            let full: PathBuf = if Path::new(p).is_absolute() { p.into() } else { base.join(p) };
            if !full.is_file() {
                return Err(invalid("config".into(), format!("no config file at {}", full.display())));
            }
            let (set, ps) = crate::config::validate::validate_files(&[full]);
            if !ps.is_empty() {
                return Err(problems(ps));
            }
            set
        }
        v @ serde_json::Value::Object(_) => {
            let (set, ps) =
                crate::config::validate::validate_text(&v.to_string(), &format!("{origin} (inline config)"));
            if !ps.is_empty() {
                return Err(problems(ps));
            }
            set
        }
        _ => return Err(invalid("config".into(), "must be a config file path or an inline config object".into())),
    };
    check(&trace, &configs).map_err(|(f, m)| invalid(f, m))?;
    Ok(LoadedTrace { trace, configs, origin: origin.to_string() })
}

fn check(t: &Trace, c: &ConfigSet) -> Result<(), (String, String)> {
    let err = |f: &str, m: String| Err((f.to_string(), m));
    if t.duration_minutes == 0 {
        return err("duration_minutes", "must be at least 1".into());
    }
    if t.step_seconds == 0 || t.step_seconds > 3600 {
        return err("step_seconds", format!("must be 1..=3600, got {}", t.step_seconds));
    }
    let steps = (u64::from(t.duration_minutes) * 60).div_ceil(u64::from(t.step_seconds));
    if steps > MAX_STEPS {
        return err(
            "duration_minutes",
            format!(
                "{} minutes at {} s steps is {steps} steps; the limit is {MAX_STEPS} (lengthen step_seconds or shorten the trace)",
                t.duration_minutes, t.step_seconds
            ),
        );
    }
    let sessions: u64 = t.sessions.iter().map(|s| u64::from(s.count)).sum();
    if sessions > MAX_SESSIONS {
        return err("sessions", format!("{sessions} sessions in all; the limit is {MAX_SESSIONS}"));
    }
    if c.autoscale_configs.is_empty() {
        return err("config", "has no autoscale_configs".into());
    }
    for (i, a) in c.autoscale_configs.iter().enumerate() {
        let Some(p) = c.provider(&a.vm_provider_config) else {
            return err(
                &format!("config.autoscale_configs[{i}].vm_provider_config"),
                format!("no vm_provider_configs entry is named {}", a.vm_provider_config),
            );
        };
        let o = a.overrides();
        let sized = p.common().vm_size().is_some() || (o.cores > 0.0 && o.memory_mb > 0.0);
        if !sized && a.autoscale_type == crate::config::AutoscaleType::DockerAgent {
            return err(
                &format!("config.autoscale_configs[{i}]"),
                format!(
                    "{}: the simulator needs each VM's size: set agent_cores_override and agent_memory_override_gb, or use a provider config that states cores and memory",
                    a.autoscale_config_name
                ),
            );
        }
    }
    for (i, s) in t.sessions.iter().enumerate() {
        if c.autoscale(&s.autoscale_config).is_none() {
            return err(
                &format!("sessions[{i}].autoscale_config"),
                format!("no autoscale config is named {}", s.autoscale_config),
            );
        }
        if s.cores < 0.0 || s.memory_mb < 0.0 || s.gpus < 0.0 {
            return err(&format!("sessions[{i}]"), "cores, memory_mb and gpus must not be negative".into());
        }
        if let Some(img) = &s.image_id
            && !c.staging_of(&s.autoscale_config).iter().any(|st| &st.image_id == img)
        {
            return err(
                &format!("sessions[{i}].image_id"),
                format!("no staging config of {} stages image {img} (in the trace's config)", s.autoscale_config),
            );
        }
    }
    for (i, f) in t.provider.failures.iter().enumerate() {
        if let Some(p) = &f.provider_config
            && c.provider(p).is_none()
        {
            return err(
                &format!("provider.failures[{i}].provider_config"),
                format!("no VM-provider config is named {p}"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod limits_tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn trace(duration_minutes: u64, step_seconds: u64, count: u64, config: &str) -> String {
        format!(
            r#"{{"name":"t","duration_minutes":{duration_minutes},"step_seconds":{step_seconds},"config":{config},
               "provider":{{"boot_seconds":60}},
               "sessions":[{{"at_minute":0,"count":{count},"cores":1,"memory_mb":512,"duration_minutes":5,"autoscale_config":"office-agents"}}]}}"#
        )
    }

    fn base() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/simulations")
    }

    fn field_of(r: Result<LoadedTrace, TraceError>) -> (String, String) {
        match r {
            Err(TraceError::Invalid { field, message, .. }) => (field, message),
            other => panic!("expected an invalid trace, got {other:?}"),
        }
    }

    /// Issue 21 point 3: a ten-year trace at 1 s steps and 10⁹ sessions are refused at once, naming the
    /// field and the limit (they used to reserve 10 GB or run to 3.9 GB and abort).
    #[test]
    fn absurd_traces_are_refused_before_anything_is_allocated() {
        let config = r#""configs/morning-rush.yaml""#;
        let started = Instant::now();
        let (field, message) = field_of(parse(&trace(10 * 525_600, 1, 1, config), "t.json", &base()));
        assert_eq!(field, "duration_minutes");
        assert!(message.contains("limit is 200000"), "{message}");
        let (field, message) = field_of(parse(&trace(60, 15, 1_000_000_000, config), "t.json", &base()));
        assert_eq!(field, "sessions");
        assert!(message.contains("1000000000 sessions") && message.contains("limit is 100000"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Within the limits the same trace loads.
        parse(&trace(60, 15, 10, config), "t.json", &base()).expect("a normal trace loads");
    }

    /// A trace whose `config` names a file that is not a config reports that, without the file's lines.
    #[test]
    fn a_config_path_that_is_not_a_config_is_reported_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let shadow = dir.path().join("shadow");
        std::fs::write(&shadow, "root:$6$salt$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n").unwrap();
        let (field, message) =
            field_of(parse(&trace(60, 15, 1, &format!("{:?}", shadow.display().to_string())), "t.json", &base()));
        assert_eq!(field, "config");
        assert!(message.contains("not a config file"), "{message}");
        assert!(!message.contains("root:") && !message.contains("salt") && !message.contains("daemon"), "{message}");
        // Binary or huge files: refused by size/encoding, not read whole.
        std::fs::write(&shadow, [0xffu8; 64]).unwrap();
        let (_, message) =
            field_of(parse(&trace(60, 15, 1, &format!("{:?}", shadow.display().to_string())), "t.json", &base()));
        assert!(message.contains("not UTF-8"), "{message}");
    }

    #[test]
    fn deeply_nested_traces_are_refused_fast() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let started = Instant::now();
        let (field, message) = field_of(parse(&text, "t.json", &base()));
        assert_eq!(field, "trace");
        assert!(message.contains("nested deeper than 64"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
