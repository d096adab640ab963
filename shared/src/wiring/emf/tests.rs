use super::*;
use crate::app::{AppError, EvalOutcome, ProvisionOutcome};
use crate::engine::{Action, Plan};
use crate::model::{ClaimId, Instance, InstanceState, OsFamily};
use crate::providers::ErrorClass;
use chrono::{DateTime, Duration, TimeZone, Utc};

const TS: i64 = 1_764_000_000_000;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(TS).unwrap() + Duration::seconds(secs)
}

fn plan(config: &str, create: u32, actions: Vec<Action>) -> Plan {
    Plan {
        autoscale_config: config.into(),
        create,
        replacements: vec![],
        actions,
        request_downscale_at: None,
        reasons: vec![],
        summary: Default::default(),
    }
}

fn claim(id: &str, config: &str, state: InstanceState, created: i64) -> Instance {
    let mut i = Instance::new_claim(ClaimId(id.into()), config, "p", "aws", OsFamily::Linux, at(created));
    i.state = state;
    i
}

fn docs_of<'a>(docs: &'a [Value], metric: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d.get(metric).is_some()).collect()
}

#[test]
fn one_count_is_one_document_of_the_specs_shape() {
    let mut s = Snapshot::default();
    s.evaluations.insert(("agents".into(), "ok"), 3);
    let docs = documents("KasmAutoscale", "prod", TS, &s);
    // The whole document, member for member, as the specification lays it out.
    assert_eq!(
        docs,
        vec![json!({
            "_aws": {
                "Timestamp": TS,
                "CloudWatchMetrics": [{
                    "Namespace": "KasmAutoscale",
                    "Dimensions": [["Deployment", "AutoscaleConfig", "Result"], ["Deployment", "Result"]],
                    "Metrics": [{"Name": "Evaluations", "Unit": "Count"}]
                }]
            },
            "Deployment": "prod",
            "AutoscaleConfig": "agents",
            "Result": "ok",
            "Evaluations": 3.0
        })]
    );
    assert_eq!(spec_violations(&docs[0]), Vec::<String>::new());
}

#[test]
fn every_count_becomes_valid_documents_and_zero_counts_none() {
    assert!(documents("N", "d", TS, &Snapshot::default()).is_empty(), "nothing counted, nothing written");
    let mut s = Snapshot::default();
    s.evaluations.insert(("agents".into(), "ok"), 1);
    s.evaluations.insert(("agents".into(), "error"), 2);
    s.decisions.insert(("agents".into(), "create"), 2);
    s.decisions.insert(("agents".into(), "drain"), 1);
    s.vms.insert(("agents".into(), "booting"), 2);
    s.oldest_booting.insert("agents".into(), 75.5);
    s.checkin_seconds.insert("agents".into(), vec![61.0, 93.25]);
    s.provider_errors.insert("outofcapacity".into(), 4);
    s.claims_failed = 1;
    let docs = documents("KasmAutoscale", "prod", TS, &s);
    assert_eq!(docs.len(), 9);
    for d in &docs {
        assert_eq!(spec_violations(d), Vec::<String>::new(), "{d}");
        assert_eq!(d["Deployment"], "prod", "{d}");
        // One metric per document, named in its only directive.
        let m = &d["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(m.as_array().unwrap().len(), 1, "{d}");
    }
    let d = docs_of(&docs, DECISIONS);
    assert_eq!(d.len(), 2);
    assert!(d.iter().any(|d| d["Kind"] == "create" && d[DECISIONS] == 2.0));
    let v = docs_of(&docs, VMS)[0];
    assert_eq!((v["State"].as_str(), v[VMS].as_f64()), (Some("booting"), Some(2.0)));
    let c = docs_of(&docs, CLAIM_AGE_AT_CHECK_IN)[0];
    assert_eq!(c[CLAIM_AGE_AT_CHECK_IN], json!([61.0, 93.25]), "one value per check-in");
    assert_eq!(c["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Seconds");
    let o = docs_of(&docs, OLDEST_BOOTING)[0];
    assert_eq!(
        o["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Deployment", "AutoscaleConfig"], ["Deployment"]])
    );
    let p = docs_of(&docs, PROVIDER_ERRORS)[0];
    assert_eq!((p["Class"].as_str(), p[PROVIDER_ERRORS].as_f64()), (Some("outofcapacity"), Some(4.0)));
    assert_eq!(docs_of(&docs, CLAIMS_FAILED)[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Deployment"]]));
}

#[test]
fn the_specs_limits_hold_for_many_values_and_long_names() {
    let mut s = Snapshot::default();
    s.checkin_seconds.insert("agents".into(), (0..250).map(f64::from).collect());
    let long = "x".repeat(1500);
    s.evaluations.insert((long.clone(), "ok"), 1);
    let docs = documents("N", "d", TS, &s);
    let ages = docs_of(&docs, CLAIM_AGE_AT_CHECK_IN);
    let lens: Vec<usize> = ages.iter().map(|d| d[CLAIM_AGE_AT_CHECK_IN].as_array().unwrap().len()).collect();
    assert_eq!(lens, vec![100, 100, 50], "an array target holds at most 100 values");
    let e = docs_of(&docs, EVALUATIONS)[0];
    assert_eq!(e["AutoscaleConfig"].as_str().unwrap().chars().count(), 1024);
    for d in &docs {
        assert_eq!(spec_violations(d), Vec::<String>::new(), "{d}");
    }
}

#[test]
fn the_checker_finds_what_breaks_the_spec() {
    let good = json!({
        "_aws": {"Timestamp": TS, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["A"]], "Metrics": [{"Name": "M", "Unit": "Count"}]}]},
        "A": "a", "M": 1
    });
    assert!(spec_violations(&good).is_empty());
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut d = good.clone();
        f(&mut d);
        spec_violations(&d)
    };
    assert!(!broken(&|d| d["_aws"]["Timestamp"] = json!("now")).is_empty());
    assert!(!broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Widgets")).is_empty());
    assert!(!broken(&|d| d["A"] = json!(1)).is_empty(), "a dimension value must be a string");
    assert!(!broken(&|d| d["M"] = json!("1")).is_empty(), "a metric value must be a number");
    assert!(!broken(&|d| d["M"] = json!(vec![1; 101])).is_empty(), "at most 100 values");
    assert!(!broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([])).is_empty());
    let keys: Vec<String> = (0..31).map(|i| format!("k{i}")).collect();
    assert!(
        !broken(&|d| {
            for k in &keys {
                d[k.as_str()] = json!("v");
            }
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([keys]);
        })
        .is_empty()
    );
    let many: Vec<Value> = (0..101).map(|i| json!({"Name": format!("m{i}")})).collect();
    assert!(
        !broken(&|d| {
            for i in 0..101 {
                d[format!("m{i}")] = json!(1);
            }
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!(many);
        })
        .is_empty()
    );
}

/// The counts come from the same counting points as the daemon's `/metrics`: what one evaluation and
/// one provisioning came to, and the claims as read afterwards.
#[test]
fn a_snapshot_counts_decisions_check_ins_and_failures() {
    let m = Metrics::default();
    let activated = ClaimId("01aaaaaaaaaaaaaaaaaaaaaaaa".into());
    m.record_evaluation(&EvalOutcome {
        autoscale_config: "agents".into(),
        result: Ok(plan(
            "agents",
            2,
            vec![
                Action::Activate { claim: activated.clone(), server_id: "s".into(), enable: true },
                Action::Destroy { claim: ClaimId("x".into()), reason: "timeout".into() },
            ],
        )),
        claimed: vec![],
        skipped_lease: false,
    });
    m.record_evaluation(&EvalOutcome {
        autoscale_config: "desktops".into(),
        result: Err(AppError::LeaseHeld("desktops".into())),
        claimed: vec![],
        skipped_lease: true,
    });
    m.record_provision(&Ok(ProvisionOutcome::Failed { error: "e".into(), class: Some(ErrorClass::OutOfCapacity) }));
    m.record_provision(&Ok(ProvisionOutcome::Retrying { error: "e".into(), class: None }));
    m.record_provision(&Ok(ProvisionOutcome::Created { vm_id: "i-1".into() }));

    let mut running = claim(activated.as_str(), "agents", InstanceState::Running, 0);
    running.transitions.insert("running".into(), at(95));
    let instances = vec![
        running,
        claim("b", "agents", InstanceState::Booting, 30),
        claim("r", "agents", InstanceState::Requested, 100),
        claim("d", "desktops", InstanceState::Draining, 0),
    ];
    let s = m.snapshot(&instances, at(120));
    assert_eq!(s.evaluations.get(&("agents".into(), "ok")), Some(&1));
    assert_eq!(s.evaluations.get(&("desktops".into(), "skipped")), Some(&1));
    assert_eq!(s.decisions.get(&("agents".into(), "create")), Some(&2));
    assert_eq!(s.decisions.get(&("agents".into(), "activate")), Some(&1));
    assert_eq!(s.decisions.get(&("agents".into(), "destroy")), Some(&1));
    assert_eq!(s.decisions.len(), 3);
    assert_eq!(s.checkin_seconds.get("agents"), Some(&vec![95.0]));
    assert_eq!(s.vms.get(&("agents".into(), "booting")), Some(&1));
    assert_eq!(s.vms.get(&("desktops".into(), "draining")), Some(&1));
    assert_eq!(s.oldest_booting.get("agents"), Some(&90.0), "the booting claim from t=30, at t=120");
    assert_eq!(s.oldest_booting.get("desktops"), None);
    assert_eq!(s.provider_errors.get("outofcapacity"), Some(&1));
    assert_eq!(s.provider_errors.get("config"), Some(&1));
    assert_eq!(s.claims_failed, 1);
    // The daemon's exposition reports the same decisions.
    let text = m.render(&instances, &[]);
    assert!(text.contains(r#"kasm_autoscale_decisions_total{autoscale_config="agents",kind="create"} 2"#), "{text}");
    assert!(text.contains("kasm_autoscale_claims_failed_total 1"), "{text}");
}

/// Every metric name and dimension set the documents publish, from a snapshot with every count set.
fn published() -> std::collections::BTreeMap<String, Vec<Vec<String>>> {
    let mut s = Snapshot::default();
    s.evaluations.insert(("c".into(), "ok"), 1);
    s.decisions.insert(("c".into(), "create"), 1);
    s.vms.insert(("c".into(), "booting"), 1);
    s.oldest_booting.insert("c".into(), 1.0);
    s.checkin_seconds.insert("c".into(), vec![1.0]);
    s.provider_errors.insert("transient".into(), 1);
    s.claims_failed = 1;
    let mut out = std::collections::BTreeMap::new();
    for d in documents("N", "d", TS, &s) {
        let dir = &d["_aws"]["CloudWatchMetrics"][0];
        let name = dir["Metrics"][0]["Name"].as_str().unwrap().to_string();
        let sets: Vec<Vec<String>> = serde_json::from_value(dir["Dimensions"].clone()).unwrap();
        out.insert(name, sets);
    }
    assert_eq!(out.len(), 7, "{out:?}");
    out
}

fn tagged<'a>(v: &'a serde_yaml_ng::Value, tag: &str) -> Option<&'a serde_yaml_ng::Value> {
    match v {
        serde_yaml_ng::Value::Tagged(t) if t.tag == tag => Some(&t.value),
        _ => None,
    }
}

/// The stack (infra/template.yaml) and the code agree: the namespace parameter is what the functions
/// get, and every alarm and dashboard graph watches a metric and dimension set that is published —
/// an alarm on dimensions the documents never carry would watch a metric that does not exist.
#[test]
fn the_stack_watches_exactly_what_the_functions_publish() {
    let t: serde_yaml_ng::Value = serde_yaml_ng::from_str(include_str!("../../../../infra/template.yaml")).unwrap();
    let published = published();
    assert_eq!(t["Parameters"]["MetricsNamespace"]["Default"].as_str(), Some(DEFAULT_NAMESPACE));
    let env = &t["Globals"]["Function"]["Environment"]["Variables"][NAMESPACE_ENV];
    assert_eq!(tagged(env, "!Ref").and_then(|v| v.as_str()), Some("MetricsNamespace"), "{env:?}");
    assert!(tagged(&t["Conditions"]["HasAlarmTopic"], "!Not").is_some(), "alarm actions hang on a condition");

    let resources = t["Resources"].as_mapping().unwrap();
    let mut watched = Vec::new();
    for (name, r) in resources {
        if r["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let p = &r["Properties"];
        let metric = p["MetricName"].as_str().unwrap().to_string();
        let dims: Vec<String> =
            p["Dimensions"].as_sequence().unwrap().iter().map(|d| d["Name"].as_str().unwrap().to_string()).collect();
        // Alarm actions only when a topic is given.
        let actions = tagged(&p["AlarmActions"], "!If").and_then(|v| v.as_sequence()).unwrap();
        assert_eq!(actions[0].as_str(), Some("HasAlarmTopic"), "{name:?}");
        assert_eq!(p["TreatMissingData"].as_str(), Some("notBreaching"), "{name:?}: counts are absent when zero");
        if p["Namespace"].as_str() == Some("AWS/SQS") {
            let q = tagged(&p["Dimensions"][0]["Value"], "!GetAtt").and_then(|v| v.as_str());
            assert_eq!(q, Some("FailedEventsQueue.QueueName"), "{name:?}");
            watched.push("dlq".to_string());
            continue;
        }
        assert_eq!(tagged(&p["Namespace"], "!Ref").and_then(|v| v.as_str()), Some("MetricsNamespace"), "{name:?}");
        let sets = published.get(&metric).unwrap_or_else(|| panic!("{name:?} watches {metric}, never published"));
        assert!(sets.contains(&dims), "{name:?}: {metric} is not published with dimensions {dims:?} ({sets:?})");
        watched.push(metric);
    }
    watched.sort();
    assert_eq!(watched, vec![CLAIMS_FAILED, OLDEST_BOOTING, PROVIDER_ERRORS, "dlq"]);

    // The dashboard: every graph of our namespace names a published metric with a published set.
    let body = tagged(&t["Resources"]["Dashboard"]["Properties"]["DashboardBody"], "!Sub")
        .and_then(|v| v.as_str())
        .expect("DashboardBody is a !Sub string")
        .replace("${MetricsNamespace}", "NS");
    let body = substituted(&body);
    let d: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("dashboard body is not JSON: {e}\n{body}"));
    let mut graphed = std::collections::BTreeSet::new();
    for w in d["widgets"].as_array().unwrap() {
        for row in w["properties"]["metrics"].as_array().into_iter().flatten() {
            let row = row.as_array().unwrap();
            if let Some(expr) = row[0]["expression"].as_str() {
                // SEARCH('{NS,Dim,Dim} MetricName="M" ...', ...)
                let schema = expr.split('{').nth(1).unwrap().split('}').next().unwrap();
                let mut parts = schema.split(',');
                assert_eq!(parts.next(), Some("NS"), "{expr}");
                let dims: Vec<String> = parts.map(str::to_string).collect();
                let metric = expr.split("MetricName=\"").nth(1).unwrap().split('"').next().unwrap();
                let sets = published.get(metric).unwrap_or_else(|| panic!("graph of unpublished {metric}"));
                assert!(sets.contains(&dims), "{expr}: {dims:?} not in {sets:?}");
                graphed.insert(metric.to_string());
            } else if row[0] == "NS" {
                let metric = row[1].as_str().unwrap();
                let dims: Vec<String> =
                    row[2..].iter().filter_map(Value::as_str).step_by(2).map(str::to_string).collect();
                let sets = published.get(metric).unwrap_or_else(|| panic!("graph of unpublished {metric}"));
                assert!(sets.contains(&dims), "{row:?}: {dims:?} not in {sets:?}");
                graphed.insert(metric.to_string());
            }
        }
    }
    let all: std::collections::BTreeSet<String> = published.keys().cloned().collect();
    assert_eq!(graphed, all, "every published metric is on the dashboard");
}

/// The other `${...}` substitutions of the dashboard body, replaced by plain values (numbers stay
/// numbers) so that it parses as JSON.
fn substituted(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').unwrap() + i;
        let name = &rest[i + 2..end];
        out.push_str(if name == "StuckBootingSeconds" { "1200" } else { "X" });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
