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

