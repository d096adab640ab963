//! The DigitalOcean provider and DigitalOcean DNS against the DigitalOcean test server over HTTP:
//! the shared conformance suites (VM provider with faults, DNS), the create flow and its request
//! bodies against the API spec, resumption by claim tag, delete and what it leaves, rate limits,
//! capacity, and preflight. `daemon`: the whole loop through the real `kasm-autoscale run`;
//! `lambda`: the whole loop through the real Lambda functions.

mod daemon;
mod lambda;

use integration_tests::digitalocean_server::{
    ACTION_POLLS, DOMAIN, DigitalOceanHarness, DigitalOceanTestServer, LIMIT_MESSAGE, Request, TOKEN, Zone, throttled,
};
use integration_tests::fake_api::Fault;
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use shared::config::providers::DigitalOceanConfig;
use shared::config::{DigitalOceanDnsConfig, SecretRef};
use shared::http::RetryConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::digitalocean::dns::DigitalOceanDns;
use shared::providers::digitalocean::{DigitalOceanProvider, tags};
use shared::providers::{BuildEnv, ErrorClass, ProviderError, Timings, VmProvider, VmSpec, VmState};
use shared::secrets::StaticSecrets;

const SCRIPT: &str = "#!/bin/bash\necho installing the kasm agent with token mgr-token-0123456789\n";

fn config(server: &DigitalOceanTestServer) -> DigitalOceanConfig {
    DigitalOceanConfig {
        name: "do-pool".into(),
        token: SecretRef::Env("DO_TOKEN".into()),
        max_instances: 10,
        region: "nyc3".into(),
        image: "docker-20-04".into(),
        droplet_size: "s-2vcpu-4gb".into(),
        tags: "kasm, env:prod".into(),
        ssh_key_name: Some("ops-key".into()),
        firewall_name: Some("kasm-fw".into()),
        startup_script: SCRIPT.into(),
        endpoint_url: Some(server.url.clone()),
        ca_bundle: None,
    }
}

fn fast_timings() -> Timings {
    Timings {
        poll: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(5),
        guest_poll: Duration::from_millis(5),
        guest_wait: Duration::from_millis(300),
    }
}

fn env(secret: &str, retry: RetryConfig, request_timeout: Duration) -> BuildEnv {
    let secrets = StaticSecrets([("env:DO_TOKEN".to_string(), secret.to_string())].into());
    BuildEnv { retry, request_timeout, timings: fast_timings(), ..BuildEnv::new(Arc::new(secrets), "t") }
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        max_retries: 3,
        budget: Duration::from_secs(5),
    }
}

fn provider_cfg(cfg: &DigitalOceanConfig, secret: &str) -> DigitalOceanProvider {
    DigitalOceanProvider::from_config(cfg, &env(secret, fast_retry(), Duration::from_secs(10))).expect("build")
}

fn provider(server: &DigitalOceanTestServer) -> DigitalOceanProvider {
    provider_cfg(&config(server), TOKEN)
}

fn spec(deployment: &str, config: &str) -> VmSpec {
    let claim = ClaimId::generate(chrono::Utc::now());
    VmSpec {
        name: format!("kasm-{claim}"),
        labels: OwnerLabels {
            deployment: deployment.into(),
            autoscale_config: Some(config.into()),
            claim: Some(claim.clone()),
        },
        claim,
        os: OsFamily::Linux,
        startup_script: Some(SecretString::from(SCRIPT.to_string())),
    }
}

fn calls(reqs: &[Request]) -> Vec<String> {
    reqs.iter().map(|r| format!("{} {}", r.method, r.route)).collect()
}

/// The shared conformance suite with faults: the client gives up on an answer after 1 s (the
/// harness stalls 2.5 s for a timeout), waits out a throttling wait of up to 2 s, and lists in
/// pages of 2.
#[tokio::test]
async fn passes_the_conformance_suite() {
    let server = DigitalOceanTestServer::start().await;
    let retry = RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_secs(2),
        max_retries: 2,
        budget: Duration::from_secs(10),
    };
    let p = DigitalOceanProvider::from_config(&config(&server), &env(TOKEN, retry, Duration::from_secs(1)))
        .expect("build")
        .with_page_size(2);
    let harness = DigitalOceanHarness::new(server.clone(), 2, Duration::from_millis(2500));
    shared::providers::conformance::run_all(&p, &harness, "conformance-do").await;
    // The suite cleaned up after itself (also the droplet whose DELETE the harness answered 404
    // without deleting it: it kept its claim tag, so the suite's cleanup found it): no droplet, no
    // claim tag, no firewall member is left.
    assert!(server.droplets().is_empty(), "{:?}", server.droplets());
    let left: Vec<String> = server.tags().into_iter().filter(|t| t.starts_with(tags::CLAIM)).collect();
    assert!(left.is_empty(), "claim tags left: {left:?}");
    assert!(server.firewall_droplets("kasm-fw").is_empty());
}

#[tokio::test]
async fn dns_passes_the_dns_conformance_suite() {
    let server = DigitalOceanTestServer::start().await;
    // An operator's records the backend must leave alone.
    server.add_record("A", "@", "1.2.3.4");
    server.add_record("NS", "@", "ns1.digitalocean.com");
    let cfg = DigitalOceanDnsConfig {
        name: "do-dns".into(),
        token: SecretRef::Env("DO_TOKEN".into()),
        domain: DOMAIN.into(),
        ttl: 60,
        endpoint_url: Some(server.url.clone()),
        ca_bundle: None,
    };
    let secrets = StaticSecrets([("env:DO_TOKEN".to_string(), TOKEN.to_string())].into());
    let dns = DigitalOceanDns::from_config(&cfg, Arc::new(secrets)).expect("build").with_page_size(2);
    shared::dns::conformance::run_all_with(&dns, &Zone(server.clone()), DOMAIN, "conformance-do-dns", 5).await;
    // The operator's records are untouched (the suite's planted foreign records stay too).
    let apex: Vec<(String, String)> =
        server.records().into_iter().filter(|r| r.name == "@").map(|r| (r.kind, r.data)).collect();
    assert_eq!(
        apex,
        vec![("A".to_string(), "1.2.3.4".to_string()), ("NS".to_string(), "ns1.digitalocean.com".to_string())]
    );
}

#[tokio::test]
async fn create_sends_what_the_spec_names_and_resumes_by_claim_tag() {
    let server = DigitalOceanTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "Desktop Pool");
    let vm = p.create_vm(&s).await.expect("create");
    assert_eq!(vm.state, VmState::Running);
    assert!(vm.public_ip.as_deref().is_some_and(|ip| ip.starts_with("104.236.32.")), "{vm:?}");
    assert!(vm.private_ip.is_some());
    assert!(s.labels.matches(&vm.labels), "{:?}", vm.labels);

    let reqs = server.requests();
    let order = calls(&reqs);
    let create_at = order.iter().position(|c| c == "POST /droplets").expect("a create");
    // Looked up by claim tag, tags made to exist and the SSH key resolved before the create.
    assert_eq!(order[0], "GET /droplets");
    assert_eq!(reqs[0].param("tag_name"), Some(tags::claim_tag(s.claim.as_str()).as_str()));
    assert!(order[..create_at].contains(&"POST /tags".to_string()));
    assert!(order[..create_at].contains(&"GET /account/keys".to_string()));
    assert!(order[create_at..].contains(&"GET /actions/{id}".to_string()));
    assert!(order[create_at..].contains(&"POST /firewalls/{id}/droplets".to_string()));

    let body: serde_json::Value = serde_json::from_str(&reqs[create_at].body).expect("JSON body");
    let want_tags = {
        let mut t = tags::for_labels(&s.labels).unwrap();
        t.extend(["kasm".to_string(), "env:prod".to_string()]);
        t
    };
    assert_eq!(
        body,
        json!({"name": s.name, "region": "nyc3", "size": "s-2vcpu-4gb", "image": "docker-20-04",
            "ssh_keys": [289794], "tags": want_tags, "user_data": SCRIPT})
    );
    assert_eq!(reqs[create_at].headers.get("content-type").map(String::as_str), Some("application/json"));
    assert!(!reqs[create_at].headers.contains_key("authorization"), "credentials are never recorded");
    for t in &want_tags {
        assert!(server.tags().contains(t), "tag {t} does not exist");
    }
    let id: u64 = vm.id.parse().unwrap();
    assert_eq!(server.firewall_droplets("kasm-fw"), vec![id]);
    assert!(server.firewall_droplets("other-fw").is_empty());

    // Again for the claim: found by its tag, nothing created, the firewall not added twice.
    server.api().clear_requests();
    let again = p.create_vm(&s).await.expect("resume");
    assert_eq!(again.id, vm.id);
    let order = calls(&server.requests());
    assert!(!order.contains(&"POST /droplets".to_string()), "{order:?}");
    assert!(!order.contains(&"POST /firewalls/{id}/droplets".to_string()), "{order:?}");
    assert_eq!(server.droplets().len(), 1);

    // A numeric image is sent as an integer id.
    let mut cfg = config(&server);
    cfg.image = "63663980".into();
    let vm2 = provider_cfg(&cfg, TOKEN).create_vm(&spec("prod", "p")).await.expect("create by id");
    assert_eq!(server.droplet(vm2.id.parse().unwrap()).unwrap().image, json!(63663980));
}

#[tokio::test]
async fn a_create_still_in_progress_is_waited_for_within_bounds() {
    let server = DigitalOceanTestServer::start().await;
    let p = provider(&server);
    let vm = p.create_vm(&spec("prod", "p")).await.expect("create");
    let polls = server.requests().iter().filter(|r| r.route == "/actions/{id}").count();
    assert!(polls >= 1 && polls <= ACTION_POLLS as usize, "{polls}");
    assert_eq!(vm.state, VmState::Running);

    // A create action that never completes: bounded by operation_timeout, Transient, droplet kept.
    server.api().inject(
        "GET /actions/{id}",
        Fault::Answer(integration_tests::fake_api::Reply::json(
            200,
            &json!({"action": {"id": 1, "status": "in-progress", "type": "create"}}),
        )),
        0,
        10_000,
    );
    server.api().inject(
        "GET /droplets/{id}",
        Fault::Answer(integration_tests::fake_api::Reply::json(
            200,
            &json!({"droplet": {"id": 1, "name": "x", "status": "new", "tags": []}}),
        )),
        0,
        10_000,
    );
    let env = BuildEnv {
        timings: Timings { operation_timeout: Duration::from_millis(200), ..fast_timings() },
        ..env(TOKEN, fast_retry(), Duration::from_secs(5))
    };
    let slow = DigitalOceanProvider::from_config(&config(&server), &env).unwrap();
    let s = spec("prod", "p");
    let err = slow.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert!(err.to_string().contains("still being created"), "{err}");
    // The polls back off (5, 10, 20, 40, 80 ms within 200 ms), not one every 5 ms.
    let polls = server.requests().iter().filter(|r| r.route == "/actions/{id}").count();
    assert!(polls <= 2 + 6, "{polls} action polls");
    server.api().clear_faults();
    assert_eq!(p.list_vms(&s.labels).await.unwrap().len(), 1, "the droplet is kept for the next attempt");
}

#[tokio::test]
async fn delete_refuses_foreign_droplets_and_leaves_nothing_of_ours() {
    let server = DigitalOceanTestServer::start().await;
    let p = provider(&server);
    let s = spec("prod", "p");
    let vm = p.create_vm(&s).await.expect("create");
    let claim_tag = tags::claim_tag(s.claim.as_str());
    assert!(server.tags().contains(&claim_tag));
    p.delete_vm(&vm.id).await.expect("delete");
    assert!(server.droplets().is_empty());
    assert!(!server.tags().contains(&claim_tag), "the claim's tag is deleted with the droplet");
    assert!(server.firewall_droplets("kasm-fw").is_empty());
    // The deployment and config tags stay: other droplets use them.
    assert!(server.tags().contains(&tags::deployment_tag("prod")));
    p.delete_vm(&vm.id).await.expect("deleting a missing droplet succeeds");
    p.delete_vm("not-a-droplet-id").await.expect("an id that is no droplet's is nothing of ours");

    let foreign = server.add_droplet("ops-bastion", &["web"]);
    let err = p.delete_vm(&foreign.to_string()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
    assert!(err.to_string().contains("not made by kasm-autoscale"), "{err}");
    assert!(server.droplet(foreign).is_some());
    let deletes: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.route == "/droplets/{id}")
        .map(|r| r.path.clone())
        .collect();
    assert!(!deletes.contains(&format!("/droplets/{foreign}")), "{deletes:?}");
}

#[tokio::test]
async fn listing_follows_pages_and_filters_by_tag() {
    let server = DigitalOceanTestServer::start().await;
    let p = provider(&server).with_page_size(2);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(p.create_vm(&spec("prod", "a")).await.unwrap().id);
    }
    p.create_vm(&spec("staging", "a")).await.unwrap();
    server.add_droplet("foreign", &["web"]);
    server.api().clear_requests();
    let mut got: Vec<String> =
        p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().into_iter().map(|v| v.id).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    let pages: Vec<Request> = server.requests();
    assert_eq!(pages.len(), 3, "{:?}", calls(&pages));
    for (i, r) in pages.iter().enumerate() {
        assert_eq!(r.param("tag_name"), Some(tags::deployment_tag("prod").as_str()));
        assert_eq!(r.param("page"), Some((i + 1).to_string().as_str()));
        assert_eq!(r.param("per_page"), Some("2"));
    }
}

#[tokio::test]
async fn throttling_carries_ratelimit_reset_and_a_spent_window_sends_nothing() {
    let server = DigitalOceanTestServer::start().await;
    let p = provider(&server);
    server.api().inject("GET /droplets/{id}", Fault::Answer(throttled(Duration::from_secs(120))), 0, 1);
    let err = p.get_vm("3164444").await.unwrap_err();
    match &err {
        ProviderError::RateLimited { retry_after: Some(w), .. } => {
            assert!(*w > Duration::from_secs(110) && *w <= Duration::from_secs(120), "{w:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.api().count("GET /droplets/{id}"), 1, "a wait past the cap is handed back, not slept");

    // The last answer said the window is spent: the next call is not sent until the reset.
    server.set_remaining(0);
    let _ = p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap();
    server.set_remaining(4000);
    // The reset the server gave is a minute away: more than the retry cap, so handed back at once.
    let before = server.requests().len();
    let err = p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err}");
    assert!(
        matches!(err, ProviderError::RateLimited { retry_after: Some(w), .. } if w > Duration::from_secs(50)),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), before, "nothing sent while the window is spent");
}

#[tokio::test]
async fn the_droplet_limit_is_out_of_capacity_and_other_422s_are_invalid() {
    let server = DigitalOceanTestServer::start().await;
    let p = provider(&server);
    server.set_droplet_limit(1);
    p.create_vm(&spec("prod", "p")).await.expect("the first fits");
    let err = p.create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::OutOfCapacity, "{err}");
    assert!(err.to_string().contains(LIMIT_MESSAGE) && err.to_string().contains("create the droplet"), "{err}");

    server.api().inject(
        "POST /droplets",
        Fault::Answer(integration_tests::digitalocean_server::err(
            422,
            "unprocessable_entity",
            "request payload validation failed",
        )),
        0,
        1,
    );
    server.set_droplet_limit(25);
    let err = p.create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
}

#[tokio::test]
async fn a_refused_token_is_auth_and_never_shown_and_names_are_checked() {
    let server = DigitalOceanTestServer::start().await;
    let wrong = "dop_v1_wrongwrongwrongwrong";
    let err = provider_cfg(&config(&server), wrong).create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(!err.to_string().contains(wrong), "{err}");

    let mut cfg = config(&server);
    cfg.ssh_key_name = Some("nobody's key".into());
    let err = provider_cfg(&cfg, TOKEN).create_vm(&spec("prod", "p")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert!(err.to_string().contains("ssh_key_name"), "{err}");
    assert!(server.droplets().is_empty(), "nothing created without the key");

    let mut cfg = config(&server);
    cfg.firewall_name = Some("no-such-fw".into());
    let err = provider_cfg(&cfg, TOKEN).create_vm(&spec("prod", "p")).await.unwrap_err();
    assert!(err.to_string().contains("firewall_name"), "{err}");
}

#[tokio::test]
async fn windows_and_oversized_scripts_are_refused_before_any_call() {
    let server = DigitalOceanTestServer::start().await;
    let p = provider(&server);
    let mut s = spec("prod", "p");
    s.os = OsFamily::Windows;
    let err = p.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert!(err.to_string().contains("Windows"), "{err}");
    let mut s = spec("prod", "p");
    s.startup_script = Some(SecretString::from(format!("#!/bin/bash\n{}", "x".repeat(64 * 1024))));
    let err = p.create_vm(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert!(err.to_string().contains("user_data accepts at most 65536"), "{err}");
    assert!(server.requests().is_empty(), "{:?}", calls(&server.requests()));
}

#[tokio::test]
async fn preflight_passes_and_names_what_is_missing() {
    let server = DigitalOceanTestServer::start().await;
    let checks = provider(&server).preflight().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(names, shared::providers::digitalocean::CHECKS.to_vec());
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    assert!(server.requests().iter().all(|r| r.method == "GET"), "preflight is read-only");

    let mut cfg = config(&server);
    cfg.region = "sfo1".into();
    cfg.image = "no-such-image".into();
    cfg.ssh_key_name = Some("missing".into());
    cfg.firewall_name = Some("missing-fw".into());
    server.set_droplet_limit(0);
    let checks = provider_cfg(&cfg, TOKEN).preflight().await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(failed, ["droplet_limit", "region", "size", "image", "ssh_key", "firewall"], "{checks:#?}");

    let checks = provider_cfg(&config(&server), "wrong").preflight().await;
    assert!(!checks[0].ok && checks[0].detail.contains("401"), "{checks:#?}");
    assert!(checks[1..checks.len() - 2].iter().all(|c| !c.ok && c.detail.contains("not checked")));
    assert_eq!(checks.len(), shared::providers::digitalocean::CHECKS.len());
}

/// What the official spec allows on one route (below `/v2`): query parameters, and for a JSON body
/// its required and allowed keys (`specification/resources/*/*.yml`, `shared/parameters.yml`).
struct SpecRoute {
    route: &'static str,
    query: &'static [&'static str],
    body: Option<(&'static [&'static str], &'static [&'static str])>,
}

const PAGED: &[&str] = &["page", "per_page"];
const DROPLET_CREATE: &[&str] = &[
    "name",
    "region",
    "size",
    "image",
    "ssh_keys",
    "backups",
    "backup_policy",
    "ipv6",
    "monitoring",
    "tags",
    "user_data",
    "private_networking",
    "volumes",
    "vpc_uuid",
    "with_droplet_agent",
    "public_networking",
];
const RECORD: &[&str] = &["type", "name", "data", "priority", "port", "ttl", "weight", "flags", "tag"];

const SPEC: &[SpecRoute] = &[
    SpecRoute { route: "GET /account", query: &[], body: None },
    SpecRoute { route: "GET /account/keys", query: PAGED, body: None },
    SpecRoute { route: "GET /droplets", query: &["page", "per_page", "tag_name", "name", "type"], body: None },
    SpecRoute { route: "POST /droplets", query: &[], body: Some((&["name", "size", "image"], DROPLET_CREATE)) },
    SpecRoute { route: "GET /droplets/{id}", query: &[], body: None },
    SpecRoute { route: "DELETE /droplets/{id}", query: &[], body: None },
    SpecRoute { route: "GET /actions/{id}", query: &[], body: None },
    SpecRoute { route: "GET /tags/{tag}", query: &[], body: None },
    SpecRoute { route: "POST /tags", query: &[], body: Some((&["name"], &["name"])) },
    SpecRoute { route: "DELETE /tags/{tag}", query: &[], body: None },
    SpecRoute { route: "GET /firewalls", query: PAGED, body: None },
    SpecRoute { route: "POST /firewalls/{id}/droplets", query: &[], body: Some((&["droplet_ids"], &["droplet_ids"])) },
    SpecRoute { route: "GET /regions", query: PAGED, body: None },
    SpecRoute { route: "GET /sizes", query: PAGED, body: None },
    SpecRoute { route: "GET /images/{image}", query: &[], body: None },
    SpecRoute { route: "GET /domains/{domain}/records", query: &["name", "type", "page", "per_page"], body: None },
    SpecRoute { route: "POST /domains/{domain}/records", query: &[], body: Some((&["type"], RECORD)) },
    SpecRoute { route: "PUT /domains/{domain}/records/{id}", query: &[], body: Some((&["type"], RECORD)) },
    SpecRoute { route: "DELETE /domains/{domain}/records/{id}", query: &[], body: None },
];

#[tokio::test]
async fn every_request_matches_the_api_spec() {
    let server = DigitalOceanTestServer::start().await;
    let p = provider(&server).with_page_size(2);
    let s = spec("prod", "p");
    let vm = p.create_vm(&s).await.unwrap();
    p.create_vm(&spec("prod", "p")).await.unwrap();
    p.create_vm(&spec("prod", "p")).await.unwrap();
    p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap();
    p.get_vm(&vm.id).await.unwrap();
    p.delete_vm(&vm.id).await.unwrap();
    let _ = p.preflight().await;
    let cfg = DigitalOceanDnsConfig {
        name: "d".into(),
        token: SecretRef::Env("DO_TOKEN".into()),
        domain: DOMAIN.into(),
        ttl: 60,
        endpoint_url: Some(server.url.clone()),
        ca_bundle: None,
    };
    let secrets = StaticSecrets([("env:DO_TOKEN".to_string(), TOKEN.to_string())].into());
    let dns = DigitalOceanDns::from_config(&cfg, Arc::new(secrets)).unwrap();
    let owner = shared::dns::DnsOwner { deployment: "prod".into(), claim: s.claim.clone() };
    let name = format!("{}.{DOMAIN}", s.name);
    use shared::dns::DnsProvider as _;
    dns.upsert_a(&shared::dns::ARecord {
        name: name.clone(),
        address: "10.0.0.7".parse().unwrap(),
        ttl: 60,
        owner: owner.clone(),
    })
    .await
    .unwrap();
    dns.upsert_a(&shared::dns::ARecord {
        name: name.clone(),
        address: "10.0.0.8".parse().unwrap(),
        ttl: 60,
        owner: owner.clone(),
    })
    .await
    .unwrap();
    assert_eq!(dns.list_owned("prod").await.unwrap().len(), 1);
    dns.delete_a(&name, &owner).await.unwrap();

    let reqs = server.requests();
    let mut seen = std::collections::BTreeSet::new();
    for r in &reqs {
        let key = r.key();
        let spec = SPEC.iter().find(|s| s.route == key).unwrap_or_else(|| panic!("{key} is not a call we expect"));
        seen.insert(spec.route);
        for k in r.params.keys() {
            assert!(spec.query.contains(&k.as_str()), "{key}: query parameter `{k}` is not in the spec");
        }
        if let Some(pp) = r.param("per_page") {
            assert!((1..=200).contains(&pp.parse::<u32>().unwrap()), "{key}: per_page {pp}");
        }
        if let Some(pg) = r.param("page") {
            assert!(pg.parse::<u32>().unwrap() >= 1, "{key}: page {pg}");
        }
        if r.param("tag_name").is_some() {
            assert!(r.param("name").is_none() && r.param("type").is_none(), "{key}: tag_name with name/type");
        }
        match spec.body {
            None => assert!(r.body.is_empty(), "{key} sends a body: {}", r.body),
            Some((required, allowed)) => {
                let b: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{key}: {e}"));
                assert_eq!(r.headers.get("content-type").map(String::as_str), Some("application/json"), "{key}");
                let o = b.as_object().unwrap_or_else(|| panic!("{key}: body is not an object"));
                for k in required {
                    assert!(o.contains_key(*k), "{key}: required `{k}` missing");
                }
                for k in o.keys() {
                    assert!(allowed.contains(&k.as_str()), "{key}: `{k}` is not in the spec's body");
                }
                if key.contains("/records") && o["type"] == "TXT" {
                    for k in ["name", "data", "flags", "tag"] {
                        assert!(o.contains_key(k), "{key}: domain_record_txt requires `{k}`");
                    }
                }
            }
        }
    }
    // Every call of the table was exercised (the table is not a list of calls we never make).
    let unseen: Vec<&str> = SPEC.iter().map(|s| s.route).filter(|r| !seen.contains(r)).collect();
    assert!(unseen.is_empty(), "not exercised: {unseen:?}");
}

/// A secret that an operator rotates.
#[derive(Debug)]
struct Rotating(std::sync::Mutex<String>);

#[async_trait::async_trait]
impl shared::secrets::Secrets for Rotating {
    async fn resolve(&self, _r: &SecretRef) -> Result<SecretString, shared::secrets::SecretError> {
        Ok(SecretString::from(self.0.lock().unwrap().clone()))
    }
}

#[tokio::test]
async fn a_refused_token_is_read_again_once_and_a_rotated_one_is_used() {
    let server = DigitalOceanTestServer::start().await;
    let secret = Arc::new(Rotating(std::sync::Mutex::new("dop_v1_revoked".into())));
    let env = BuildEnv { retry: fast_retry(), timings: fast_timings(), ..BuildEnv::new(secret.clone(), "t") };
    let p = DigitalOceanProvider::from_config(&config(&server), &env).unwrap();

    // Refused, and the secret still holds the same token: sent once, Auth.
    let err = p.get_vm("3164444").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert_eq!(server.requests().len(), 1);

    // The operator rotates the token: the next refusal reads it again and the call goes through.
    *secret.0.lock().unwrap() = TOKEN.to_string();
    server.api().clear_requests();
    let err = p.get_vm("3164444").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    assert_eq!(server.requests().len(), 2, "the refused request and one with the new token");
    server.api().clear_requests();
    let _ = p.get_vm("3164444").await;
    assert_eq!(server.requests().len(), 1, "the new token is kept");
}

/// The provisioner's and the reaper's work (`shared::app::provision` and `reap`, what the Lambda
/// handlers call) on a DigitalOcean config with DigitalOcean DNS: the droplet and its A record on
/// provision, both gone after the reaper's pass on a claim being deleted.
#[tokio::test]
async fn the_provisioner_and_reaper_drive_digitalocean_and_its_dns() {
    use shared::app::{Ctx, ProvisionOutcome, Tuning, provision, reap};
    use shared::clock::{Clock as _, VirtualClock};
    use shared::config::{ConfigFile, ConfigSet};
    use shared::kasm::memory::MemoryKasm;
    use shared::model::{Instance, InstanceState};
    use shared::providers::ProviderSet;
    use shared::store::{MemoryStore, Store, moved};

    let server = DigitalOceanTestServer::start().await;
    let doc = format!(
        r##"
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: pool
    zone_id: zone
    vm_provider_config: do
    standby_cores: 0
    register_dns: true
    base_domain_name: {DOMAIN}
    dns_provider_config: do-dns
vm_provider_configs:
  - provider: digital_ocean
    name: do
    token: env:DO_TOKEN
    max_droplets: 3
    region: nyc3
    image: docker-20-04
    droplet_size: s-4vcpu-8gb
    tags: kasm
    endpoint_url: {url}
    startup_script: "#!/bin/bash\necho {{server_hostname}} {{server_external_fqdn}}"
dns_provider_configs:
  - provider: digital_ocean
    name: do-dns
    token: env:DO_TOKEN
    domain: {DOMAIN}
    ttl: 60
    endpoint_url: {url}
"##,
        url = server.url
    );
    let f: ConfigFile = serde_yaml_ng::from_str(&doc).expect("config");
    let mut set = ConfigSet::default();
    set.merge(f);
    let secrets = Arc::new(StaticSecrets([("env:DO_TOKEN".to_string(), TOKEN.to_string())].into()));
    let env = BuildEnv {
        retry: fast_retry(),
        timings: fast_timings(),
        ..BuildEnv::new(secrets.clone(), &set.settings.deployment_id)
    };
    let providers = ProviderSet::new(set.vm_provider_configs.iter(), env);
    // Built the way the wiring builds it: the registry, the DNS config's own `endpoint_url`.
    let secrets: Arc<dyn shared::secrets::Secrets> = secrets;
    let dns = shared::dns::registry::build_all(&set, &secrets);
    let clock = Arc::new(VirtualClock::new(chrono::Utc::now()));
    let store = Arc::new(MemoryStore::new());
    let ctx = Ctx {
        store: store.clone(),
        kasm: Arc::new(MemoryKasm::new()),
        secrets,
        clock: clock.clone(),
        providers,
        dns,
        configs: Arc::new(set),
        holder: "test".into(),
        tuning: Tuning::default(),
    };
    let c = Instance::new_claim(
        ClaimId::generate(clock.now()),
        "agents",
        "do",
        "digital_ocean",
        OsFamily::Linux,
        clock.now(),
    );
    assert!(store.try_claim(&c, 10).await.unwrap());

    let outcome = provision(&ctx, &c.id).await.expect("provision");
    assert!(matches!(outcome, ProvisionOutcome::Created { .. }), "{outcome:?}");
    let droplets = server.droplets();
    assert_eq!(droplets.len(), 1);
    let rel = c.vm_name.clone();
    let records = server.records();
    let a = records.iter().find(|r| r.kind == "A" && r.name == rel).expect("an A record for the droplet");
    assert!(a.data.starts_with("104.236.32."), "the public address: {a:?}");
    assert!(records.iter().any(|r| r.kind == "TXT" && r.name == rel && r.data.contains(c.id.as_str())));
    let script = droplets[0].user_data.clone().unwrap();
    assert!(script.contains(&format!("{rel} {rel}.{DOMAIN}")), "{script}");

    // The evaluator moves the claim to deleting; the reaper removes the record, then the droplet.
    let got = store.get(&c.id).await.unwrap().unwrap();
    store.update(&moved(&got, InstanceState::Deleting, clock.now()).unwrap()).await.unwrap();
    let rep = reap(&ctx).await;
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert!(server.droplets().is_empty(), "{:?}", server.droplets());
    assert!(server.records().is_empty(), "{:?}", server.records());
    assert!(server.tags().iter().all(|t| !t.starts_with(tags::CLAIM)));
}
