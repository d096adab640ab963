//! The trace format `kasm-autoscale simulate` accepts (documented in the README).

use serde::{Deserialize, Serialize};
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
    /// Repeats the `sessions` bursts: `times` occurrences in all, `every_minutes` apart (1440 = a
    /// day, 10080 = a week), so a multi-week trace is one day's or week's pattern written once.
    #[serde(default)]
    pub repeat: Option<Repeat>,
    /// Sessions generated from a time-of-week arrival rate (Poisson, seeded by `seed`), each with a
    /// duration drawn from a distribution.
    #[serde(default)]
    pub arrivals: Vec<Arrivals>,
    /// Days (0 = the start's day) before this one are warm-up: the summary's session, wait and VM-hour
    /// figures count from this day on (default 0: everything counts).
    #[serde(default)]
    pub score_from_day: u32,
    /// Which record with room Kasm places a session on: the zone's `load_strategy` (see
    /// [`LoadStrategy`]). Default `record_order`.
    #[serde(default)]
    pub load_strategy: LoadStrategy,
}

/// How the simulated Kasm picks, among the records of the pool with room for a session, the one it
/// goes to: Kasm's zone setting `load_strategy` ("Load Balance Strategy" in the admin UI).
///
/// Source: Kasm's own placement (`ProviderManager.get_available_slots` and `.prioritize_slots` in
/// the decompiled API, `kasmweb-decompilation/api`, bytecode disassembled): a record offers one slot
/// per session of the requested size that still fits on it (cores, memory and GPUs left after its
/// sessions); `least_load` orders records by their slots, most first, `most_load` fewest first;
/// `most_kasms` / `least_kasms` by their sessions, most / fewest first; Python's stable sort keeps
/// the records' order among equals. Kasm's documentation names "Least Load" the default (Deployment
/// Zones); the Helm chart of 1.19 seeds zones with `most_sessions` by default and names
/// `fewest_sessions` (its docs/preseed.md), accepted here as the same two orders by sessions. Kasm's
/// 1.19 placement code is not public: these are the orders of the version that was decompiled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStrategy {
    /// Ours, the simulator's default and every shipped trace's: the first record with room in record
    /// order (oldest record first) — what Kasm's orders do among records they rank equal. On the
    /// shipped traces it packs like `most_load` (README: the office trace's figures under each).
    #[default]
    RecordOrder,
    /// Kasm's `least_load` (its documented default): the record with the most room first — spreads
    /// sessions, so agents rarely empty.
    LeastLoad,
    /// Kasm's `most_load`: the record with the least room that still fits first — packs sessions.
    MostLoad,
    /// Kasm's `most_kasms` (the Helm chart's `most_sessions`): the record with the most sessions first.
    #[serde(alias = "most_sessions")]
    MostKasms,
    /// Kasm's `least_kasms` (the Helm chart's `fewest_sessions`): the record with the fewest sessions first.
    #[serde(alias = "fewest_sessions")]
    LeastKasms,
}

impl LoadStrategy {
    /// The name a trace gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStrategy::RecordOrder => "record_order",
            LoadStrategy::LeastLoad => "least_load",
            LoadStrategy::MostLoad => "most_load",
            LoadStrategy::MostKasms => "most_kasms",
            LoadStrategy::LeastKasms => "least_kasms",
        }
    }
}

/// How the `sessions` bursts repeat.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// Minutes between two occurrences of the pattern.
    pub every_minutes: u32,
    /// Occurrences in all (1 = no repeat).
    pub times: u32,
    /// Occurrences (0 = the first) left out, e.g. a holiday of a daily pattern.
    #[serde(default)]
    pub skip: Vec<u32>,
}

/// Sessions arriving at random (Poisson) at a rate per hour that depends on the day of the week and
/// the time of day (UTC, the trace's clock).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrivals {
    /// The autoscale config whose pool serves them.
    pub autoscale_config: String,
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
    pub duration: DurationDist,
    /// Arrival rates: a session arrives at the rate of the windows covering the minute (summed).
    pub rates: Vec<Rate>,
    /// Days (0 = the start's day) on which nothing arrives: holidays.
    #[serde(default)]
    pub skip_days: Vec<u32>,
    /// As a burst's `queued`: the requests are queued in Kasm while they wait.
    #[serde(default)]
    pub queued: bool,
}

/// One arrival-rate window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// ISO days of the week (1 = Monday .. 7 = Sunday) it applies on; empty = every day.
    #[serde(default)]
    pub days: Vec<u8>,
    /// Start minute of the day (inclusive), UTC.
    pub from_minute: u32,
    /// End minute of the day (exclusive), at most 1440.
    pub to_minute: u32,
    /// Mean arrivals per hour in the window.
    pub per_hour: f64,
}

/// A session-duration distribution, in minutes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, tag = "distribution", rename_all = "snake_case")]
pub enum DurationDist {
    /// Every session lasts `minutes`.
    Fixed {
        /// Minutes.
        minutes: u32,
    },
    /// Uniform between `min_minutes` and `max_minutes` (inclusive).
    Uniform {
        /// Shortest.
        min_minutes: u32,
        /// Longest.
        max_minutes: u32,
    },
    /// Exponential with mean `mean_minutes`, cut to `min_minutes..=max_minutes`.
    Exponential {
        /// Mean.
        mean_minutes: f64,
        /// Shortest.
        #[serde(default)]
        min_minutes: u32,
        /// Longest.
        max_minutes: u32,
    },
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
    /// The currency `hourly_price` is in (`USD`, `EUR`, ...); without it the estimate is in "cost
    /// units" and says so.
    #[serde(default)]
    pub currency: Option<String>,
    /// Injected create failures.
    #[serde(default)]
    pub failures: Vec<TraceFailure>,
}

impl Default for TraceProvider {
    fn default() -> Self {
        TraceProvider {
            boot_seconds: default_boot(),
            boot_jitter_seconds: 0,
            hourly_price: 0.0,
            currency: None,
            failures: vec![],
        }
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    let times = t.repeat.as_ref().map_or(1, |r| u64::from(r.times));
    let sessions: u64 = t.sessions.iter().map(|s| u64::from(s.count)).sum::<u64>().saturating_mul(times);
    if sessions > MAX_SESSIONS {
        return err("sessions", format!("{sessions} sessions in all; the limit is {MAX_SESSIONS}"));
    }
    if let Some(r) = &t.repeat
        && (r.times == 0 || r.every_minutes == 0)
    {
        return err("repeat", "times and every_minutes must be at least 1".into());
    }
    // The expected number of generated sessions, before anything is drawn.
    let mut expected = 0.0f64;
    for (i, a) in t.arrivals.iter().enumerate() {
        if c.autoscale(&a.autoscale_config).is_none() {
            return err(
                &format!("arrivals[{i}].autoscale_config"),
                format!("no autoscale config is named {}", a.autoscale_config),
            );
        }
        if !(a.cores >= 0.0 && a.memory_mb >= 0.0 && a.gpus >= 0.0) {
            return err(&format!("arrivals[{i}]"), "cores, memory_mb and gpus must not be negative".into());
        }
        match a.duration {
            DurationDist::Uniform { min_minutes, max_minutes } if min_minutes > max_minutes => {
                return err(&format!("arrivals[{i}].duration"), "min_minutes must not exceed max_minutes".into());
            }
            DurationDist::Exponential { mean_minutes, min_minutes, max_minutes }
                if !(mean_minutes > 0.0 && mean_minutes.is_finite()) || min_minutes > max_minutes =>
            {
                return err(
                    &format!("arrivals[{i}].duration"),
                    "mean_minutes must be positive and min_minutes must not exceed max_minutes".into(),
                );
            }
            _ => {}
        }
        for (j, r) in a.rates.iter().enumerate() {
            let field = format!("arrivals[{i}].rates[{j}]");
            if r.from_minute >= r.to_minute || r.to_minute > 1440 {
                return err(&field, "needs from_minute < to_minute <= 1440".into());
            }
            if !(r.per_hour >= 0.0 && r.per_hour.is_finite()) {
                return err(&format!("{field}.per_hour"), "must be a finite number >= 0".into());
            }
            if r.days.iter().any(|d| !(1..=7).contains(d)) {
                return err(&format!("{field}.days"), "days are ISO numbers 1 (Monday) to 7 (Sunday)".into());
            }
            let days = if r.days.is_empty() { 7.0 } else { r.days.len() as f64 };
            let weeks = (f64::from(t.duration_minutes) / 10080.0).ceil();
            expected += r.per_hour * f64::from(r.to_minute - r.from_minute) / 60.0 * days * weeks;
        }
    }
    if (sessions as f64) + expected > MAX_SESSIONS as f64 {
        return err(
            "arrivals",
            format!(
                "about {} sessions in all (bursts and expected arrivals); the limit is {MAX_SESSIONS}",
                (sessions as f64 + expected).round()
            ),
        );
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

/// Every session burst of the trace, in arrival order: the `sessions` bursts repeated as `repeat`
/// says, then the generated `arrivals` (one burst per session, each with its own duration), sorted by
/// minute (stable: bursts of one minute keep the trace's order). Generation is seeded (`seed ^
/// 0x5eed`, apart from the boot jitter's stream) and stops at [`MAX_SESSIONS`].
pub fn expand(t: &Trace, start: chrono::DateTime<chrono::Utc>) -> Vec<SessionBurst> {
    use chrono::{Datelike, Timelike};
    use rand::{Rng, SeedableRng};
    let (times, every, skip) = match &t.repeat {
        Some(r) => (r.times.max(1), r.every_minutes, r.skip.clone()),
        None => (1, 0, Vec::new()),
    };
    let mut out: Vec<SessionBurst> = Vec::new();
    for k in (0..times).filter(|k| !skip.contains(k)) {
        for b in &t.sessions {
            let Some(at) = k.checked_mul(every).and_then(|o| o.checked_add(b.at_minute)) else { continue };
            if at <= t.duration_minutes {
                out.push(SessionBurst { at_minute: at, ..b.clone() });
            }
        }
    }
    let mut total: u64 = out.iter().map(|b| u64::from(b.count)).sum();
    let mut rng = rand::rngs::StdRng::seed_from_u64(t.seed.unwrap_or(1) ^ 0x5eed);
    let day0 = start.date_naive();
    for m in 0..t.duration_minutes {
        let at = start + chrono::Duration::minutes(i64::from(m));
        let (dow, mod_) = (at.weekday().number_from_monday() as u8, at.hour() * 60 + at.minute());
        let day = (at.date_naive() - day0).num_days();
        for a in &t.arrivals {
            if a.skip_days.iter().any(|d| i64::from(*d) == day) {
                continue;
            }
            let per_hour: f64 = a
                .rates
                .iter()
                .filter(|r| (r.days.is_empty() || r.days.contains(&dow)) && r.from_minute <= mod_ && mod_ < r.to_minute)
                .map(|r| r.per_hour)
                .sum();
            if per_hour <= 0.0 {
                continue;
            }
            // Poisson (Knuth) with the minute's mean.
            let limit = (-per_hour / 60.0).exp();
            let mut n = 0u32;
            let mut p: f64 = rng.random();
            while p > limit && n < 10_000 {
                n += 1;
                p *= rng.random::<f64>();
            }
            for _ in 0..n {
                if total >= MAX_SESSIONS {
                    break;
                }
                total += 1;
                let minutes = match a.duration {
                    DurationDist::Fixed { minutes } => minutes,
                    DurationDist::Uniform { min_minutes, max_minutes } => rng.random_range(min_minutes..=max_minutes),
                    DurationDist::Exponential { mean_minutes, min_minutes, max_minutes } => {
                        let u: f64 = rng.random();
                        let x = -mean_minutes * (1.0 - u).ln();
                        (x.round().clamp(f64::from(min_minutes), f64::from(max_minutes))) as u32
                    }
                };
                out.push(SessionBurst {
                    at_minute: m,
                    count: 1,
                    cores: a.cores,
                    memory_mb: a.memory_mb,
                    gpus: a.gpus,
                    duration_minutes: minutes,
                    autoscale_config: a.autoscale_config.clone(),
                    image_id: None,
                    queued: a.queued,
                });
            }
        }
    }
    out.sort_by_key(|b| b.at_minute);
    out
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
