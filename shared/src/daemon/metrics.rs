//! The counters the daemon and the Lambda functions keep — evaluations, decisions by kind, provider
//! errors by class, failed claims, check-ins — and their Prometheus text exposition, written by hand
//! (a few lines; no registry crate needed), with VMs by config and state and the decision latency.
//! The Lambda functions write the same counts as CloudWatch embedded metric format
//! ([`Metrics::snapshot`] → `wiring::emf`), one fresh [`Metrics`] per invocation.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::app::{AppError, EvalOutcome, ProvisionOutcome};
use crate::engine::Action;
use crate::model::{ClaimId, Instance, InstanceState};
use crate::providers::{ErrorClass, ProviderError};

/// Latency histogram buckets, seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default)]
struct State {
    evaluations: BTreeMap<(String, &'static str), u64>,
    /// By autoscale config and kind (`create`, `activate`, `drain`, `undrain`, `destroy`).
    decisions: BTreeMap<(String, &'static str), u64>,
    provider_errors: BTreeMap<String, u64>,
    /// Claims the provisioner gave up on (`failed`).
    claims_failed: u64,
    /// Claims whose VM checked in (activated) since the start, by autoscale config.
    checked_in: Vec<(String, ClaimId)>,
    latency_buckets: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
    webhooks: BTreeMap<u16, u64>,
    connections_refused: u64,
    /// Predictive scaling: the newest forecast of each config that forecasts.
    forecasts: BTreeMap<String, crate::engine::ForecastSummary>,
}

/// The daemon's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("metrics lock")
    }

    /// Counts one evaluation of `config` (`result`: ok, error, skipped).
    pub fn evaluation(&self, config: &str, result: &'static str) {
        *self.lock().evaluations.entry((config.to_string(), result)).or_default() += 1;
    }

    /// Counts one provider error of `class`.
    pub fn provider_error(&self, class: &str) {
        *self.lock().provider_errors.entry(class.to_string()).or_default() += 1;
    }

    /// Counts what one config's evaluation came to: the evaluation by result (`ok`, `error`, `skipped`),
    /// the plan's decisions by kind, the claims whose VM checked in, and keeps the plan's forecast.
    pub fn record_evaluation(&self, o: &EvalOutcome) {
        let result = match &o.result {
            Ok(_) => "ok",
            Err(_) if o.skipped_lease => "skipped",
            Err(_) => "error",
        };
        self.evaluation(&o.autoscale_config, result);
        let Ok(plan) = &o.result else { return };
        self.forecast(&o.autoscale_config, plan.summary.forecast.as_ref());
        let mut st = self.lock();
        let config = &o.autoscale_config;
        if plan.create > 0 {
            *st.decisions.entry((config.clone(), "create")).or_default() += u64::from(plan.create);
        }
        for a in &plan.actions {
            let kind = match a {
                Action::Activate { claim, .. } => {
                    st.checked_in.push((config.clone(), claim.clone()));
                    "activate"
                }
                Action::Drain { .. } => "drain",
                Action::Undrain { .. } => "undrain",
                Action::Destroy { .. } => "destroy",
            };
            *st.decisions.entry((config.clone(), kind)).or_default() += 1;
        }
    }

    /// Counts what one claim's provisioning came to: a provider error by class (`config` when the
    /// error is ours: config, secret or script) when it did not succeed, and a failed claim when it
    /// was given up.
    pub fn record_provision(&self, r: &Result<ProvisionOutcome, AppError>) {
        if let Ok(ProvisionOutcome::Retrying { class, .. } | ProvisionOutcome::Failed { class, .. }) = r {
            self.provider_error(&class.map(class_label).unwrap_or_else(|| "config".into()));
        }
        if let Ok(ProvisionOutcome::Failed { .. }) = r {
            self.lock().claims_failed += 1;
        }
    }

    /// Counts the provider and DNS-provider errors of a reaper or Windows-password pass by class.
    pub fn record_provider_errors(&self, classes: &[ErrorClass]) {
        for c in classes {
            self.provider_error(&class_label(*c));
        }
    }

    /// The counts so far, with what `instances` (the live claims, read after the work) say: VMs by
    /// config and state, the oldest claim of each config not checked in yet, and how old each claim
    /// counted as checked in was when it did (its `running` time less its creation).
    pub fn snapshot(&self, instances: &[Instance], now: chrono::DateTime<chrono::Utc>) -> Snapshot {
        let st = self.lock();
        let mut vms: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        let mut oldest_booting: BTreeMap<String, f64> = BTreeMap::new();
        for i in instances {
            *vms.entry((i.autoscale_config.clone(), i.state.as_str())).or_default() += 1;
            if matches!(i.state, InstanceState::Requested | InstanceState::Creating | InstanceState::Booting) {
                let age = seconds_between(i.created_at, now);
                let e = oldest_booting.entry(i.autoscale_config.clone()).or_default();
                *e = e.max(age);
            }
        }
        let mut checkin_seconds: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (config, claim) in &st.checked_in {
            let at = instances
                .iter()
                .find(|i| &i.id == claim)
                .and_then(|i| i.transitions.get(InstanceState::Running.as_str()).map(|t| (i.created_at, *t)));
            if let Some((created, running)) = at {
                checkin_seconds.entry(config.clone()).or_default().push(seconds_between(created, running));
            }
        }
        Snapshot {
            evaluations: st.evaluations.clone(),
            decisions: st.decisions.clone(),
            provider_errors: st.provider_errors.clone(),
            claims_failed: st.claims_failed,
            vms,
            oldest_booting,
            checkin_seconds,
        }
    }

    /// Records how long one evaluation cycle took.
    pub fn decision_latency(&self, seconds: f64) {
        let mut st = self.lock();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                st.latency_buckets[i] += 1;
            }
        }
        st.latency_sum += seconds;
        st.latency_count += 1;
    }

    /// Counts one connection closed at once because the listener had its maximum open.
    pub fn connection_refused(&self) {
        self.lock().connections_refused += 1;
    }

    /// Keeps the forecast of `config`'s newest plan (`None`: predictive scaling off, nothing exported).
    pub fn forecast(&self, config: &str, forecast: Option<&crate::engine::ForecastSummary>) {
        let mut st = self.lock();
        match forecast {
            Some(f) => {
                st.forecasts.insert(config.to_string(), f.clone());
            }
            None => {
                st.forecasts.remove(config);
            }
        }
    }

    /// Counts one webhook answer by status.
    pub fn webhook(&self, status: u16) {
        *self.lock().webhooks.entry(status).or_default() += 1;
    }

    /// The exposition text; `instances` are the live claims (VMs by config and state), `unusable` the
    /// VM-provider configs whose provider cannot be built (each fails alone), with why.
    pub fn render(&self, instances: &[Instance], unusable: &[(String, ProviderError)]) -> String {
        let st = self.lock();
        let mut o = String::new();
        let _ = writeln!(o, "# HELP kasm_autoscale_evaluations_total Evaluations by autoscale config and result.");
        let _ = writeln!(o, "# TYPE kasm_autoscale_evaluations_total counter");
        for ((c, r), n) in &st.evaluations {
            let _ =
                writeln!(o, "kasm_autoscale_evaluations_total{{autoscale_config=\"{}\",result=\"{r}\"}} {n}", esc(c));
        }
        let _ = writeln!(
            o,
            "# HELP kasm_autoscale_decisions_total Decisions by autoscale config and kind (create counts VMs claimed)."
        );
        let _ = writeln!(o, "# TYPE kasm_autoscale_decisions_total counter");
        for ((c, k), n) in &st.decisions {
            let _ = writeln!(o, "kasm_autoscale_decisions_total{{autoscale_config=\"{}\",kind=\"{k}\"}} {n}", esc(c));
        }
        let _ = writeln!(o, "# HELP kasm_autoscale_claims_failed_total Claims the provisioner gave up on.");
        let _ = writeln!(o, "# TYPE kasm_autoscale_claims_failed_total counter");
        let _ = writeln!(o, "kasm_autoscale_claims_failed_total {}", st.claims_failed);
        let _ = writeln!(o, "# HELP kasm_autoscale_vms VMs we own, by autoscale config and claim state.");
        let _ = writeln!(o, "# TYPE kasm_autoscale_vms gauge");
        let mut vms: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for i in instances {
            *vms.entry((i.autoscale_config.as_str(), i.state.as_str())).or_default() += 1;
        }
        for ((c, s), n) in vms {
            let _ = writeln!(o, "kasm_autoscale_vms{{autoscale_config=\"{}\",state=\"{s}\"}} {n}", esc(c));
        }
        let _ = writeln!(o, "# HELP kasm_autoscale_provider_errors_total Provider errors by class.");
        let _ = writeln!(o, "# TYPE kasm_autoscale_provider_errors_total counter");
        for (c, n) in &st.provider_errors {
            let _ = writeln!(o, "kasm_autoscale_provider_errors_total{{class=\"{}\"}} {n}", esc(c));
        }
        let _ = writeln!(
            o,
            "# HELP kasm_autoscale_provider_config_unusable VM-provider configs whose provider cannot be built, by class."
        );
        let _ = writeln!(o, "# TYPE kasm_autoscale_provider_config_unusable gauge");
        for (name, e) in unusable {
            let class = format!("{:?}", e.class()).to_lowercase();
            let _ = writeln!(
                o,
                "kasm_autoscale_provider_config_unusable{{provider_config=\"{}\",class=\"{class}\"}} 1",
                esc(name)
            );
        }
        let _ = writeln!(o, "# HELP kasm_autoscale_webhooks_total Webhook requests by HTTP status.");
        let _ = writeln!(o, "# TYPE kasm_autoscale_webhooks_total counter");
        for (s, n) in &st.webhooks {
            let _ = writeln!(o, "kasm_autoscale_webhooks_total{{status=\"{s}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP kasm_autoscale_connections_refused_total Connections closed at once: the listener had its maximum open."
        );
        let _ = writeln!(o, "# TYPE kasm_autoscale_connections_refused_total counter");
        let _ = writeln!(o, "kasm_autoscale_connections_refused_total {}", st.connections_refused);
        if !st.forecasts.is_empty() {
            for (name, help, of) in [
                (
                    "demand",
                    "Predictive scaling: demand forecast one lead time ahead (0 when nothing is forecast), by dimension.",
                    (|f: &crate::engine::ForecastSummary| (f.demand, f.demand_sessions))
                        as fn(&crate::engine::ForecastSummary) -> (crate::model::Resources, u32),
                ),
                (
                    "extra",
                    "Predictive scaling: what the forecast adds to what is kept free (forecast_only: would add), by dimension.",
                    |f: &crate::engine::ForecastSummary| (f.extra, f.extra_sessions),
                ),
            ] {
                let _ = writeln!(o, "# HELP kasm_autoscale_forecast_{name} {help}");
                let _ = writeln!(o, "# TYPE kasm_autoscale_forecast_{name} gauge");
                for (c, f) in &st.forecasts {
                    let (r, sessions) = of(f);
                    for (d, v) in [
                        ("cores", r.cores),
                        ("memory_mb", r.memory_mb),
                        ("gpus", r.gpus),
                        ("sessions", f64::from(sessions)),
                    ] {
                        let _ = writeln!(
                            o,
                            "kasm_autoscale_forecast_{name}{{autoscale_config=\"{}\",mode=\"{}\",dimension=\"{d}\"}} {v}",
                            esc(c),
                            esc(&f.mode)
                        );
                    }
                }
            }
            let _ = writeln!(
                o,
                "# HELP kasm_autoscale_forecast_lead_seconds Predictive scaling: the lead time (p90 of measured boots, else provision_timeout / 2)."
            );
            let _ = writeln!(o, "# TYPE kasm_autoscale_forecast_lead_seconds gauge");
            for (c, f) in &st.forecasts {
                let _ = writeln!(
                    o,
                    "kasm_autoscale_forecast_lead_seconds{{autoscale_config=\"{}\"}} {}",
                    esc(c),
                    f.lead_seconds
                );
            }
        }
        let _ = writeln!(o, "# HELP kasm_autoscale_decision_seconds Duration of one evaluation cycle.");
        let _ = writeln!(o, "# TYPE kasm_autoscale_decision_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(o, "kasm_autoscale_decision_seconds_bucket{{le=\"{b}\"}} {}", st.latency_buckets[i]);
        }
        let _ = writeln!(o, "kasm_autoscale_decision_seconds_bucket{{le=\"+Inf\"}} {}", st.latency_count);
        let _ = writeln!(o, "kasm_autoscale_decision_seconds_sum {}", st.latency_sum);
        let _ = writeln!(o, "kasm_autoscale_decision_seconds_count {}", st.latency_count);
        o
    }
}

/// A provider-error class as the metrics label it: lower case, no separator (`outofcapacity`).
fn class_label(c: ErrorClass) -> String {
    format!("{c:?}").to_lowercase()
}

fn seconds_between(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> f64 {
    (to.signed_duration_since(from).num_milliseconds().max(0) as f64) / 1000.0
}

/// The counts of a [`Metrics`] at one moment (see [`Metrics::snapshot`]): plain data, what the
/// CloudWatch embedded metric format documents are built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Evaluations by (autoscale config, result: `ok`, `error`, `skipped`).
    pub evaluations: BTreeMap<(String, &'static str), u64>,
    /// Decisions by (autoscale config, kind: `create` (VMs claimed), `activate`, `drain`, `undrain`,
    /// `destroy`).
    pub decisions: BTreeMap<(String, &'static str), u64>,
    /// Provider errors by class (`config` for errors of ours: config, secret, script).
    pub provider_errors: BTreeMap<String, u64>,
    /// Claims given up as `failed` by the provisioner.
    pub claims_failed: u64,
    /// VMs we own by (autoscale config, claim state).
    pub vms: BTreeMap<(String, &'static str), u64>,
    /// Per autoscale config, the age (seconds) of its oldest claim not checked in yet (`requested`,
    /// `creating`, `booting`); configs without one are absent.
    pub oldest_booting: BTreeMap<String, f64>,
    /// Per autoscale config, the age (seconds) each claim had when its VM checked in.
    pub checkin_seconds: BTreeMap<String, Vec<f64>>,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forecasts_are_exported_per_config_and_dimension() {
        let m = Metrics::default();
        assert!(!m.render(&[], &[]).contains("forecast"), "nothing while no config forecasts");
        let f = crate::engine::ForecastSummary {
            mode: "on".into(),
            lead_seconds: 270,
            demand: crate::model::Resources::new(38.0, 0.0, 0.0),
            extra: crate::model::Resources::new(22.0, 0.0, 0.0),
            ..Default::default()
        };
        m.forecast("office", Some(&f));
        let text = m.render(&[], &[]);
        assert!(
            text.contains(
                r#"kasm_autoscale_forecast_demand{autoscale_config="office",mode="on",dimension="cores"} 38"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"kasm_autoscale_forecast_extra{autoscale_config="office",mode="on",dimension="cores"} 22"#),
            "{text}"
        );
        assert!(text.contains(r#"kasm_autoscale_forecast_lead_seconds{autoscale_config="office"} 270"#), "{text}");
        m.forecast("office", None);
        assert!(!m.render(&[], &[]).contains("forecast"));
    }

    #[test]
    fn unusable_provider_configs_are_a_gauge_by_class() {
        let m = Metrics::default();
        let e = ProviderError::NotSupported { provider: "azure", what: "not built".into() };
        let text = m.render(&[], &[("az\"1".to_string(), e)]);
        assert!(
            text.contains(
                "kasm_autoscale_provider_config_unusable{provider_config=\"az\\\"1\",class=\"notsupported\"} 1"
            ),
            "{text}"
        );
        assert!(!m.render(&[], &[]).contains("kasm_autoscale_provider_config_unusable{"));
    }
}
