//! The daemon's status page: `GET /` serves one self-contained HTML page (inline CSS and script, no
//! CDN, no data in it) and `GET /status` the data it shows, as JSON: per autoscale config the VMs by
//! state with their age, the newest evaluation (standby vs free capacity, its reasons), the last
//! decisions, and a chart of the last hours; the recent provider and evaluation errors. The page polls
//! `/status` every `refresh_seconds`.
//!
//! Both are served where `/metrics` is, and `/status` asks for the same bearer token as `/metrics`
//! (`settings.webhook.metrics_token`). The page itself carries no data, so a browser (which cannot send
//! a bearer header when it navigates) loads it freely; it takes the token from the URL's fragment
//! (`/#token=…`: a fragment is never sent to a server, and the page removes it from the address bar)
//! or from a box it shows when `/status` answers 401, and keeps it in the tab's `sessionStorage`.
//!
//! What is recorded is bounded: per config the newest evaluation, the last [`DECISIONS`] decisions
//! and the chart's points of the last [`WINDOW_HOURS`] hours (at most [`POINTS`]); the last
//! [`ERRORS`] errors. Nothing survives a restart but the VMs, which come from the store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::Digest;

use crate::app::{AppError, EvalOutcome, ProvisionOutcome};
use crate::config::{AutoscaleType, ConfigSet};
use crate::model::{Instance, Resources};
use crate::providers::ProviderError;

/// Decisions kept per autoscale config.
pub const DECISIONS: usize = 20;
/// Errors kept (all configs).
pub const ERRORS: usize = 50;
/// Hours of chart kept.
pub const WINDOW_HOURS: i64 = 6;
/// Chart points kept per autoscale config (older ones are dropped first).
pub const POINTS: usize = 1_500;

/// The page (`GET /`).
const PAGE: &str = include_str!("status.html");

/// The page and its headers: a Content-Security-Policy that allows its own inline style and script
/// (by hash) and requests to this origin, nothing else.
pub static PAGE_RESPONSE: LazyLock<(String, &'static str)> = LazyLock::new(|| {
    let hash = |open: &str, close: &str| {
        let start = PAGE.find(open).map(|i| i + open.len()).unwrap_or(0);
        let end = PAGE[start..].find(close).map(|i| start + i).unwrap_or(start);
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&PAGE.as_bytes()[start..end]))
    };
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash("<script>", "</script>"),
        hash("<style>", "</style>")
    );
    (csp, PAGE)
});

/// One decision: a plan that changed something.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// The plan's one-line summary (`+2 agents — free cores 2 < standby 8`).
    pub line: String,
    /// Every reason the plan gave.
    pub reasons: Vec<String>,
}

/// One error: a provider call that failed for a claim, or an evaluation that failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The autoscale config, when known.
    pub config: Option<String>,
    /// The claim, for provisioning errors.
    pub claim: Option<String>,
    /// `evaluation`, `config` (ours: config, secret or script) or the provider error's class.
    pub class: String,
    /// The redacted message.
    pub message: String,
}

/// One capacity dimension as the newest evaluation saw it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Capacity {
    /// `cores`, `memory_mb`, `gpus` (Docker agents) or `sessions` (server pools).
    pub unit: &'static str,
    /// Free (booting VMs included).
    pub free: f64,
    /// What is to be kept free.
    pub standby: f64,
}

/// The newest evaluation of a config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastEvaluation {
    /// When.
    pub at: DateTime<Utc>,
    /// What it decided, in one line (`no change` when nothing).
    pub line: String,
    /// Its reasons (or the error).
    pub reasons: Vec<String>,
    /// Standby vs free, per dimension the config scales on.
    pub capacity: Vec<Capacity>,
    /// Live sessions on the config's records.
    pub sessions: u32,
    /// Session requests waiting on no record.
    pub queued_requests: u32,
    /// Whether a schedule (or none) makes the config active.
    pub active: bool,
    /// Claims counting toward the cap, and the cap (provider config wide).
    pub owned_total: u32,
    /// The cap.
    pub max_instances: u32,
    /// The evaluation failed: why (then the other fields are empty).
    pub error: Option<String>,
}

/// One point of a config's chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// When.
    pub t: DateTime<Utc>,
    /// Free capacity in the chart's unit.
    pub free: f64,
    /// Standby in the chart's unit.
    pub standby: f64,
    /// VMs we own (claims not deleted).
    pub vms: u32,
}

#[derive(Debug, Default)]
struct ConfigLog {
    last: Option<LastEvaluation>,
    decisions: VecDeque<Decision>,
    unit: &'static str,
    series: VecDeque<Point>,
}

#[derive(Debug, Default)]
struct Inner {
    configs: BTreeMap<String, ConfigLog>,
    errors: VecDeque<ErrorEntry>,
}

/// What the daemon saw, for the status page (bounded; see the module docs).
#[derive(Debug, Default)]
pub struct StatusLog {
    inner: Mutex<Inner>,
}

impl StatusLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("status lock")
    }

    /// Records one config's evaluation at `now`: its newest evaluation, a decision when the plan
    /// changed something, a chart point, or an error. An evaluation skipped because another held the
    /// config's lease records nothing.
    pub fn record_evaluation(&self, o: &EvalOutcome, kind: Option<AutoscaleType>, now: DateTime<Utc>) {
        if o.skipped_lease {
            return;
        }
        let mut inner = self.lock();
        let plan = match &o.result {
            Ok(p) => p,
            Err(e) => {
                let message = e.to_string();
                let log = inner.configs.entry(o.autoscale_config.clone()).or_default();
                log.last = Some(LastEvaluation {
                    at: now,
                    line: "evaluation failed".into(),
                    reasons: vec![message.clone()],
                    capacity: Vec::new(),
                    sessions: 0,
                    queued_requests: 0,
                    active: false,
                    owned_total: 0,
                    max_instances: 0,
                    error: Some(message.clone()),
                });
                push_error(
                    &mut inner.errors,
                    ErrorEntry {
                        at: now,
                        config: Some(o.autoscale_config.clone()),
                        claim: None,
                        class: "evaluation".into(),
                        message,
                    },
                );
                return;
            }
        };
        let s = &plan.summary;
        let capacity = capacity(s, kind);
        let line = if plan.changes_something() || !o.claimed.is_empty() {
            plan.headline(o.claimed.len(), kind)
        } else {
            "no change".to_string()
        };
        let log = inner.configs.entry(o.autoscale_config.clone()).or_default();
        if line != "no change" {
            log.decisions.push_back(Decision { at: now, line: line.clone(), reasons: plan.reasons.clone() });
            while log.decisions.len() > DECISIONS {
                log.decisions.pop_front();
            }
        }
        let charted = capacity[0];
        log.unit = charted.unit;
        log.series.push_back(Point {
            t: now,
            free: charted.free,
            standby: charted.standby,
            vms: s.vms_by_state.iter().filter(|(k, _)| k.as_str() != "deleted").map(|(_, n)| *n).sum(),
        });
        let oldest = now - chrono::Duration::hours(WINDOW_HOURS);
        while log.series.len() > POINTS || log.series.front().is_some_and(|p| p.t < oldest) {
            log.series.pop_front();
        }
        log.last = Some(LastEvaluation {
            at: now,
            line,
            reasons: plan.reasons.clone(),
            capacity,
            sessions: s.sessions,
            queued_requests: s.queued_requests,
            active: s.active,
            owned_total: s.owned_total,
            max_instances: s.max_instances,
            error: None,
        });
    }

    /// Records what one claim's provisioning came to, when it did not succeed.
    pub fn record_provision(&self, claim: &str, r: &Result<ProvisionOutcome, AppError>, now: DateTime<Utc>) {
        let (class, message) = match r {
            Ok(ProvisionOutcome::Retrying { error, class } | ProvisionOutcome::Failed { error, class }) => {
                let class = class.map(|c| format!("{c:?}").to_lowercase()).unwrap_or_else(|| "config".into());
                let what = if matches!(r, Ok(ProvisionOutcome::Failed { .. })) { "gave up" } else { "will retry" };
                (class, format!("{error} ({what})"))
            }
            Ok(_) => return,
            Err(e) => ("store".to_string(), e.to_string()),
        };
        push_error(
            &mut self.lock().errors,
            ErrorEntry { at: now, config: None, claim: Some(claim.to_string()), class, message },
        );
    }

    /// The status as of `now`: `instances` are the live claims (from the store), `unusable` the
    /// VM-provider configs whose provider cannot be built.
    pub fn view(
        &self,
        configs: &ConfigSet,
        instances: &[Instance],
        unusable: &[(String, ProviderError)],
        refresh_seconds: u64,
        now: DateTime<Utc>,
    ) -> StatusView {
        let inner = self.lock();
        let claim_config: HashMap<String, &str> =
            instances.iter().map(|i| (i.id.to_string(), i.autoscale_config.as_str())).collect();
        let mut views = Vec::new();
        for a in &configs.autoscale_configs {
            let name = &a.autoscale_config_name;
            let log = inner.configs.get(name);
            let mut vms: Vec<VmView> = instances
                .iter()
                .filter(|i| &i.autoscale_config == name)
                .map(|i| VmView {
                    claim: i.id.to_string(),
                    state: i.state.as_str(),
                    vm_name: i.vm_name.clone(),
                    vm_id: i.vm_id.clone(),
                    address: i.private_ip.clone().or_else(|| i.hostname.clone()),
                    age_seconds: seconds(i.created_at, now),
                    in_state_seconds: seconds(i.state_since, now),
                    last_error: i.last_error.clone(),
                    end_reason: i.end_reason.clone(),
                })
                .collect();
            vms.sort_by(|x, y| x.state_order().cmp(&y.state_order()).then(y.age_seconds.cmp(&x.age_seconds)));
            let mut vms_by_state = BTreeMap::new();
            for v in &vms {
                *vms_by_state.entry(v.state).or_insert(0u32) += 1;
            }
            views.push(ConfigView {
                name: name.clone(),
                kind: match a.autoscale_type {
                    AutoscaleType::DockerAgent => "docker_agent",
                    AutoscaleType::Server => "server",
                },
                provider_config: a.vm_provider_config.clone(),
                vms_by_state,
                vms,
                last: log.and_then(|l| l.last.clone()),
                decisions: log.map(|l| l.decisions.iter().rev().cloned().collect()).unwrap_or_default(),
                unit: log.map(|l| l.unit).filter(|u| !u.is_empty()).unwrap_or(match a.autoscale_type {
                    AutoscaleType::DockerAgent => "cores",
                    AutoscaleType::Server => "sessions",
                }),
                series: log.map(|l| l.series.iter().copied().collect()).unwrap_or_default(),
            });
        }
        let errors = inner
            .errors
            .iter()
            .rev()
            .map(|e| {
                let mut e = e.clone();
                if e.config.is_none() {
                    e.config = e.claim.as_ref().and_then(|c| claim_config.get(c)).map(|c| c.to_string());
                }
                e
            })
            .collect();
        StatusView {
            generated_at: now,
            deployment_id: configs.settings.deployment_id.clone(),
            version: env!("CARGO_PKG_VERSION"),
            refresh_seconds,
            configs: views,
            errors,
            unusable_provider_configs: unusable
                .iter()
                .map(|(name, e)| Unusable {
                    name: name.clone(),
                    class: format!("{:?}", e.class()).to_lowercase(),
                    message: e.to_string(),
                })
                .collect(),
        }
    }
}

fn push_error(errors: &mut VecDeque<ErrorEntry>, e: ErrorEntry) {
    errors.push_back(e);
    while errors.len() > ERRORS {
        errors.pop_front();
    }
}

/// Standby vs free per dimension the config scales on; the first is the one charted (for Docker
/// agents the first dimension with a standby, cores when none has).
fn capacity(s: &crate::engine::Summary, kind: Option<AutoscaleType>) -> Vec<Capacity> {
    if kind == Some(AutoscaleType::Server) {
        return vec![Capacity {
            unit: "sessions",
            free: f64::from(s.available_sessions),
            standby: f64::from(s.minimum_sessions),
        }];
    }
    let dims = |r: &Resources| [("cores", r.cores), ("memory_mb", r.memory_mb), ("gpus", r.gpus)];
    let mut out: Vec<Capacity> = dims(&s.free)
        .into_iter()
        .zip(dims(&s.standby))
        .filter(|((unit, _), (_, standby))| *unit == "cores" || *standby > 0.0)
        .map(|((unit, free), (_, standby))| Capacity { unit, free, standby })
        .collect();
    if let Some(i) = out.iter().position(|c| c.standby > 0.0) {
        out.swap(0, i);
    }
    out
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from(to.signed_duration_since(from).num_seconds()).unwrap_or(0)
}

/// `GET /status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// When this was put together.
    pub generated_at: DateTime<Utc>,
    /// `settings.deployment_id`.
    pub deployment_id: String,
    /// This build's version.
    pub version: &'static str,
    /// How often the page polls (the evaluation interval, at least 5 s).
    pub refresh_seconds: u64,
    /// Every autoscale config, in the config's order.
    pub configs: Vec<ConfigView>,
    /// Recent errors, newest first.
    pub errors: Vec<ErrorEntry>,
    /// VM-provider configs whose provider cannot be built.
    pub unusable_provider_configs: Vec<Unusable>,
}

/// One autoscale config on the status page.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigView {
    /// `autoscale_config_name`.
    pub name: String,
    /// `docker_agent` or `server`.
    pub kind: &'static str,
    /// Its VM-provider config.
    pub provider_config: String,
    /// Its VMs (claims not deleted) by state.
    pub vms_by_state: BTreeMap<&'static str, u32>,
    /// Its VMs, in lifecycle order, oldest first within a state.
    pub vms: Vec<VmView>,
    /// The newest evaluation since the daemon started.
    pub last: Option<LastEvaluation>,
    /// The last decisions, newest first.
    pub decisions: Vec<Decision>,
    /// The chart's unit.
    pub unit: &'static str,
    /// The chart's points, oldest first.
    pub series: Vec<Point>,
}

/// One VM (claim) on the status page.
#[derive(Debug, Clone, Serialize)]
pub struct VmView {
    /// The claim id.
    pub claim: String,
    /// The claim's state.
    pub state: &'static str,
    /// The VM's name at the provider.
    pub vm_name: String,
    /// The provider's id, once known.
    pub vm_id: Option<String>,
    /// Private IP, else hostname, once known.
    pub address: Option<String>,
    /// Seconds since the claim was made.
    pub age_seconds: u64,
    /// Seconds in its current state.
    pub in_state_seconds: u64,
    /// The last error (redacted).
    pub last_error: Option<String>,
    /// Why it is being drained or deleted.
    pub end_reason: Option<String>,
}

impl VmView {
    fn state_order(&self) -> usize {
        crate::model::InstanceState::ALL.iter().position(|s| s.as_str() == self.state).unwrap_or(usize::MAX)
    }
}

/// A VM-provider config whose provider cannot be built.
#[derive(Debug, Clone, Serialize)]
pub struct Unusable {
    /// Its name.
    pub name: String,
    /// The error's class.
    pub class: String,
    /// Why.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Plan, Summary};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn outcome(create: u32, free: f64, result_err: bool) -> EvalOutcome {
        let summary = Summary {
            active: true,
            free: Resources::new(free, 8_000.0, 0.0),
            standby: Resources::new(8.0, 0.0, 0.0),
            vms_by_state: [("running".to_string(), 2), ("deleted".to_string(), 5)].into(),
            owned_total: 2,
            max_instances: 5,
            ..Summary::default()
        };
        let plan = Plan {
            autoscale_config: "agents".into(),
            create,
            replacements: vec![],
            actions: vec![],
            request_downscale_at: None,
            reasons: vec![format!("free cores {free} < standby 8: +{create} agents of 4 cores")],
            summary,
        };
        EvalOutcome {
            autoscale_config: "agents".into(),
            result: if result_err { Err(AppError::UnknownConfig("kasm said no".into())) } else { Ok(plan) },
            claimed: (0..create).map(|i| crate::model::ClaimId(format!("claim{i}"))).collect(),
            skipped_lease: false,
        }
    }

    fn configs() -> ConfigSet {
        let doc = r#"
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: pool
    zone_id: zone
    vm_provider_config: prov
    standby_cores: 8
vm_provider_configs: []
"#;
        let mut set = ConfigSet::default();
        set.merge(serde_yaml_ng::from_str(doc).unwrap());
        set
    }

    #[test]
    fn decisions_are_plans_that_change_something_and_every_evaluation_is_a_point() {
        let log = StatusLog::default();
        log.record_evaluation(&outcome(2, 0.0, false), Some(AutoscaleType::DockerAgent), at(0));
        log.record_evaluation(&outcome(0, 8.0, false), Some(AutoscaleType::DockerAgent), at(30));
        let v = log.view(&configs(), &[], &[], 10, at(40));
        let c = &v.configs[0];
        assert_eq!(c.decisions.len(), 1, "{:?}", c.decisions);
        assert!(c.decisions[0].line.starts_with("+2 agents — free cores 0 < standby 8"), "{}", c.decisions[0].line);
        assert_eq!(c.series.len(), 2);
        assert_eq!((c.series[0].free, c.series[0].standby, c.series[0].vms), (0.0, 8.0, 2), "deleted not counted");
        let last = c.last.as_ref().unwrap();
        assert_eq!((last.line.as_str(), last.at), ("no change", at(30)));
        assert_eq!(last.capacity[0], Capacity { unit: "cores", free: 8.0, standby: 8.0 });
        assert_eq!(c.unit, "cores");
    }

    #[test]
    fn what_is_kept_is_bounded_by_count_and_window() {
        let log = StatusLog::default();
        for i in 0..(POINTS as i64 + 100) {
            log.record_evaluation(&outcome(1, 0.0, false), None, at(i));
            log.record_provision(
                "c",
                &Ok(ProvisionOutcome::Retrying { error: format!("boom {i}"), class: None }),
                at(i),
            );
        }
        let v = log.view(&configs(), &[], &[], 10, at(POINTS as i64 + 100));
        assert_eq!(v.configs[0].series.len(), POINTS);
        assert_eq!(v.configs[0].decisions.len(), DECISIONS);
        assert_eq!(v.errors.len(), ERRORS);
        assert!(v.errors[0].message.starts_with(&format!("boom {}", POINTS + 99)), "newest first");
        // Points older than the window go even below the count.
        let log = StatusLog::default();
        log.record_evaluation(&outcome(0, 1.0, false), None, at(0));
        log.record_evaluation(&outcome(0, 2.0, false), None, at(WINDOW_HOURS * 3600 + 1));
        let v = log.view(&configs(), &[], &[], 10, at(WINDOW_HOURS * 3600 + 1));
        assert_eq!(v.configs[0].series.len(), 1);
    }

    #[test]
    fn errors_name_their_config_and_a_failed_evaluation_is_shown() {
        let log = StatusLog::default();
        log.record_evaluation(&outcome(0, 0.0, true), None, at(0));
        let claim = crate::model::ClaimId::generate(at(0));
        let mut i = crate::model::Instance::new_claim(
            claim.clone(),
            "agents",
            "prov",
            "proxmox",
            crate::model::OsFamily::Linux,
            at(0),
        );
        i.state = crate::model::InstanceState::Booting;
        log.record_provision(
            &claim.to_string(),
            &Ok(ProvisionOutcome::Failed {
                error: "quota".into(),
                class: Some(crate::providers::ErrorClass::OutOfCapacity),
            }),
            at(5),
        );
        log.record_provision(&claim.to_string(), &Ok(ProvisionOutcome::Created { vm_id: "vm-1".into() }), at(6));
        let v = log.view(&configs(), std::slice::from_ref(&i), &[], 10, at(10));
        assert_eq!(v.errors.len(), 2, "{:?}", v.errors);
        assert_eq!(v.errors[0].class, "outofcapacity");
        assert_eq!(v.errors[0].message, "quota (gave up)");
        assert_eq!(v.errors[0].config.as_deref(), Some("agents"), "found through the claim");
        assert_eq!(v.errors[1].class, "evaluation");
        let c = &v.configs[0];
        assert!(c.last.as_ref().unwrap().error.as_deref().unwrap().contains("kasm said no"));
        assert_eq!(c.vms.len(), 1);
        assert_eq!(c.vms_by_state.get("booting"), Some(&1));
        assert_eq!(c.vms[0].age_seconds, 10);
    }

    #[test]
    fn the_page_is_self_contained_and_its_policy_allows_exactly_its_own_script_and_style() {
        let (csp, page) = &*PAGE_RESPONSE;
        assert_eq!(page.matches("<script").count(), 1, "one inline script");
        assert_eq!(page.matches("<style").count(), 1, "one inline style");
        // The SVG namespace is a name, not a request.
        let page = page.replace("\"http://www.w3.org/2000/svg\"", "");
        for outside in ["http://", "https://", "src=", "<link", "@import", "url("] {
            assert!(!page.contains(outside), "the page loads nothing from elsewhere: {outside}");
        }
        assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
        assert!(csp.starts_with("default-src 'none';") && csp.contains("connect-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
}
