//! The Lambda functions' metrics as CloudWatch embedded metric format (EMF): JSON lines on stdout
//! that CloudWatch Logs turns into metrics, no API call and no permission needed.
//!
//! Follows the specification at
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>:
//! a root object with `_aws` = `{Timestamp (ms since the epoch), CloudWatchMetrics: [MetricDirective]}`,
//! each directive `{Namespace, Dimensions: [DimensionSet], Metrics: [{Name, Unit}]}`; every dimension
//! key and metric name a top-level member (dimension values strings of at most 1,024 characters,
//! metric values numbers or arrays of at most 100 numbers); at most 100 metrics per directive and 30
//! keys per dimension set; units from CloudWatch's list.
//!
//! One document per metric and dimension values (a document carries one value per dimension key).
//! The counts are the ones the daemon's `/metrics` reports ([`crate::daemon::Metrics`]), taken per
//! invocation: [`documents`] is a pure function of a [`Snapshot`]; [`emit`] writes them through
//! the secret scrubber like every log line.

use serde_json::{Map, Value, json};

use crate::app::Ctx;
use crate::daemon::{Metrics, Snapshot};
use crate::store::InstanceFilter;

/// The environment variable naming the CloudWatch namespace (the stack sets it from its
/// `MetricsNamespace` parameter).
pub const NAMESPACE_ENV: &str = "KASM_AUTOSCALE_METRICS_NAMESPACE";
/// The namespace when [`NAMESPACE_ENV`] is not set (the stack's default too).
pub const DEFAULT_NAMESPACE: &str = "KasmAutoscale";

/// Dimension: the deployment id (`settings.deployment_id`), on every metric, so two stacks in one
/// account never add up.
pub const DIM_DEPLOYMENT: &str = "Deployment";
/// Dimension: the autoscale config's name.
pub const DIM_CONFIG: &str = "AutoscaleConfig";
/// Dimension: an evaluation's result (`ok`, `error`, `skipped`).
pub const DIM_RESULT: &str = "Result";
/// Dimension: a decision's kind (`create`, `activate`, `drain`, `undrain`, `destroy`).
pub const DIM_KIND: &str = "Kind";
/// Dimension: a claim's state (`requested` … `failed`).
pub const DIM_STATE: &str = "State";
/// Dimension: a provider error's class, lower-cased (`transient`, `outofcapacity`, `ratelimited`, …; `config` for errors of ours).
pub const DIM_CLASS: &str = "Class";

/// Metric: evaluations (Count), by config and result.
pub const EVALUATIONS: &str = "Evaluations";
/// Metric: decisions (Count), by config and kind; `create` counts VMs claimed.
pub const DECISIONS: &str = "Decisions";
/// Metric: VMs we own (Count), by config and claim state, read after each scale-evaluator run.
pub const VMS: &str = "Vms";
/// Metric: the age (Seconds) of a config's oldest claim that has not checked in yet.
pub const OLDEST_BOOTING: &str = "OldestBootingSeconds";
/// Metric: a claim's age (Seconds) when its VM checked in to Kasm (one value per check-in).
pub const CLAIM_AGE_AT_CHECK_IN: &str = "ClaimAgeAtCheckIn";
/// Metric: provider errors (Count), by class.
pub const PROVIDER_ERRORS: &str = "ProviderErrors";
/// Metric: claims the provisioner gave up on (Count).
pub const CLAIMS_FAILED: &str = "ClaimsFailed";

/// The units we use, spelt as CloudWatch's `MetricDatum` list spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `Count`.
    Count,
    /// `Seconds`.
    Seconds,
}

impl Unit {
    /// The unit's name in EMF.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
        }
    }
}

/// The spec's limits.
const MAX_DIMENSION_KEYS: usize = 30;
const MAX_VALUES: usize = 100;
const MAX_DIMENSION_VALUE_CHARS: usize = 1024;

/// One metric's values under one set of dimension values, and the dimension sets it is published
/// under (each a subset of the keys of `dims`).
struct Point<'a> {
    metric: &'static str,
    unit: Unit,
    values: Vec<f64>,
    dims: Vec<(&'static str, &'a str)>,
    sets: &'static [&'static [&'static str]],
}

/// The EMF document of one metric. Values beyond 100 go to further documents (an array target may
/// hold at most 100); dimension values are cut to 1,024 characters.
fn point_documents(namespace: &str, timestamp_ms: i64, p: &Point<'_>) -> Vec<Value> {
    p.values
        .chunks(MAX_VALUES)
        .map(|chunk| {
            let mut root = Map::new();
            root.insert(
                "_aws".into(),
                json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": p.sets,
                        "Metrics": [{"Name": p.metric, "Unit": p.unit.as_str()}],
                    }],
                }),
            );
            for (k, v) in &p.dims {
                root.insert((*k).into(), Value::String(v.chars().take(MAX_DIMENSION_VALUE_CHARS).collect()));
            }
            let value = match chunk {
                [one] => json!(one),
                many => json!(many),
            };
            root.insert(p.metric.into(), value);
            Value::Object(root)
        })
        .collect()
}

/// The EMF documents of one invocation's counts, at `timestamp_ms` (ms since the epoch), under
/// `namespace`, every one with the `Deployment` dimension. Counts that are zero are left out (a
/// missing data point is what an alarm on errors expects when there were none).
pub fn documents(namespace: &str, deployment: &str, timestamp_ms: i64, s: &Snapshot) -> Vec<Value> {
    let mut points: Vec<Point<'_>> = Vec::new();
    for ((config, result), n) in &s.evaluations {
        points.push(Point {
            metric: EVALUATIONS,
            unit: Unit::Count,
            values: vec![*n as f64],
            dims: vec![(DIM_DEPLOYMENT, deployment), (DIM_CONFIG, config), (DIM_RESULT, result)],
            sets: &[&[DIM_DEPLOYMENT, DIM_CONFIG, DIM_RESULT], &[DIM_DEPLOYMENT, DIM_RESULT]],
        });
    }
    for ((config, kind), n) in &s.decisions {
        points.push(Point {
            metric: DECISIONS,
            unit: Unit::Count,
            values: vec![*n as f64],
            dims: vec![(DIM_DEPLOYMENT, deployment), (DIM_CONFIG, config), (DIM_KIND, kind)],
            sets: &[&[DIM_DEPLOYMENT, DIM_CONFIG, DIM_KIND], &[DIM_DEPLOYMENT, DIM_KIND]],
        });
    }
    for ((config, state), n) in &s.vms {
        points.push(Point {
            metric: VMS,
            unit: Unit::Count,
            values: vec![*n as f64],
            dims: vec![(DIM_DEPLOYMENT, deployment), (DIM_CONFIG, config), (DIM_STATE, state)],
            sets: &[&[DIM_DEPLOYMENT, DIM_CONFIG, DIM_STATE]],
        });
    }
    for (config, age) in &s.oldest_booting {
        points.push(Point {
            metric: OLDEST_BOOTING,
            unit: Unit::Seconds,
            values: vec![*age],
            dims: vec![(DIM_DEPLOYMENT, deployment), (DIM_CONFIG, config)],
            sets: &[&[DIM_DEPLOYMENT, DIM_CONFIG], &[DIM_DEPLOYMENT]],
        });
    }
    for (config, ages) in s.checkin_seconds.iter().filter(|(_, a)| !a.is_empty()) {
        points.push(Point {
            metric: CLAIM_AGE_AT_CHECK_IN,
            unit: Unit::Seconds,
            values: ages.clone(),
            dims: vec![(DIM_DEPLOYMENT, deployment), (DIM_CONFIG, config)],
            sets: &[&[DIM_DEPLOYMENT, DIM_CONFIG], &[DIM_DEPLOYMENT]],
        });
    }
    for (class, n) in &s.provider_errors {
        points.push(Point {
            metric: PROVIDER_ERRORS,
            unit: Unit::Count,
            values: vec![*n as f64],
            dims: vec![(DIM_DEPLOYMENT, deployment), (DIM_CLASS, class)],
            sets: &[&[DIM_DEPLOYMENT, DIM_CLASS], &[DIM_DEPLOYMENT]],
        });
    }
    if s.claims_failed > 0 {
        points.push(Point {
            metric: CLAIMS_FAILED,
            unit: Unit::Count,
            values: vec![s.claims_failed as f64],
            dims: vec![(DIM_DEPLOYMENT, deployment)],
            sets: &[&[DIM_DEPLOYMENT]],
        });
    }
    points.iter().flat_map(|p| point_documents(namespace, timestamp_ms, p)).collect()
}

/// What in `doc` breaks the specification's rules (empty: a valid document). Checked on a parsed
/// document, independently of how [`documents`] builds them; the tests run every document through it.
pub fn spec_violations(doc: &Value) -> Vec<String> {
    const UNITS: [&str; 27] = [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let mut out = Vec::new();
    let Some(root) = doc.as_object() else { return vec!["the root is not an object".into()] };
    let Some(aws) = root.get("_aws").and_then(Value::as_object) else { return vec!["no _aws object".into()] };
    for k in aws.keys().filter(|k| !matches!(k.as_str(), "Timestamp" | "CloudWatchMetrics")) {
        out.push(format!("_aws has a member the spec does not define: {k}"));
    }
    if !aws.get("Timestamp").is_some_and(|t| t.is_i64() || t.is_u64()) {
        out.push("_aws.Timestamp is not an integer (ms since the epoch)".into());
    }
    let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
        out.push("_aws.CloudWatchMetrics is not an array".into());
        return out;
    };
    for d in directives {
        let Some(d) = d.as_object() else {
            out.push("a MetricDirective is not an object".into());
            continue;
        };
        for k in d.keys().filter(|k| !matches!(k.as_str(), "Namespace" | "Dimensions" | "Metrics")) {
            out.push(format!("a MetricDirective has a member the spec does not define: {k}"));
        }
        match d.get("Namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n.chars().count() <= 1024 => {}
            _ => out.push("Namespace is not a string of 1 to 1,024 characters".into()),
        }
        match d.get("Dimensions").and_then(Value::as_array) {
            Some(sets) if !sets.is_empty() => {
                for set in sets {
                    let Some(keys) = set.as_array() else {
                        out.push("a DimensionSet is not an array".into());
                        continue;
                    };
                    if keys.len() > MAX_DIMENSION_KEYS {
                        out.push(format!("a DimensionSet has {} keys (at most 30)", keys.len()));
                    }
                    for k in keys {
                        match k.as_str().map(|k| (k, root.get(k))) {
                            Some((k, Some(Value::String(v)))) if v.chars().count() > MAX_DIMENSION_VALUE_CHARS => {
                                out.push(format!("dimension {k}: value over 1,024 characters"))
                            }
                            Some((_, Some(Value::String(_)))) => {}
                            Some((k, _)) => {
                                out.push(format!("dimension {k}: no string member of that name on the root"))
                            }
                            None => out.push("a dimension key is not a string".into()),
                        }
                    }
                }
            }
            _ => out.push("Dimensions is not a non-empty array".into()),
        }
        let Some(metrics) = d.get("Metrics").and_then(Value::as_array) else {
            out.push("Metrics is not an array".into());
            continue;
        };
        if metrics.len() > 100 {
            out.push(format!("{} MetricDefinitions (at most 100)", metrics.len()));
        }
        for m in metrics {
            let Some(name) = m.get("Name").and_then(Value::as_str) else {
                out.push("a MetricDefinition has no Name".into());
                continue;
            };
            if let Some(u) = m.get("Unit")
                && !u.as_str().is_some_and(|u| UNITS.contains(&u))
            {
                out.push(format!("metric {name}: unit {u} is not a CloudWatch unit"));
            }
            match root.get(name) {
                Some(v) if v.is_number() => {}
                Some(Value::Array(a)) if a.len() <= MAX_VALUES && a.iter().all(Value::is_number) => {}
                _ => out.push(format!("metric {name}: no numeric member (or array of at most 100) on the root")),
            }
        }
    }
    out
}

/// Which counts a function reports besides its own: the scale-evaluator reads the store after its
/// run for the VMs by state (it runs every minute; the others do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Only the invocation's counts.
    Counts,
    /// The counts and the VMs by config and state.
    CountsAndVms,
}

/// Writes the invocation's metrics as EMF lines to stdout, through the secret scrubber, under the
/// namespace of [`NAMESPACE_ENV`]. A store read that fails leaves the VMs out (logged), never the
/// invocation's result.
pub async fn emit(ctx: &Ctx, metrics: &Metrics, report: Report) {
    let instances = match report {
        Report::Counts => Vec::new(),
        Report::CountsAndVms => match ctx.store.list(&InstanceFilter::default()).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: claims not read; VMs by state left out");
                Vec::new()
            }
        },
    };
    let now = ctx.clock.now();
    let namespace = std::env::var(NAMESPACE_ENV).ok().filter(|n| !n.trim().is_empty());
    let docs = documents(
        namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
        &ctx.configs.settings.deployment_id,
        now.timestamp_millis(),
        &metrics.snapshot(&instances, now),
    );
    use std::io::Write as _;
    let mut out = crate::http::ScrubLines::new(std::io::stdout());
    for d in docs {
        // One line per document: CloudWatch Logs reads each line as one event.
        let _ = writeln!(out, "{d}");
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests;
