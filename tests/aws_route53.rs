//! The Route 53 DNS backend against moto, through the real SDK: the shared DNS conformance suite (an
//! operator's records planted straight through the SDK), listing and reading names across pages, the
//! A record and its marker in one change batch, nothing sent for an unchanged record, errors, and the
//! registry building the backend from a config and the environment.
//!
//! Where moto is not Route 53 (see the README's moto list): a `CREATE` of a record that exists is
//! refused only when the very same change was made before, and `DELETE` is checked against the zone's
//! change history rather than its current records; the conformance suite does not depend on either.

use async_trait::async_trait;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use integration_tests::moto::Moto;
use shared::dns::conformance::{self, ZoneAccess};
use shared::dns::{ARecord, DnsError, DnsOwner, DnsProvider, ErrorClass};
use shared::model::ClaimId;
use shared::providers::aws::dns::Route53Dns;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

/// Records every Route 53 request as sent: method, path and query, body.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, String, String)>>>);

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "test-recorder"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let r = ctx.request();
        let body = String::from_utf8_lossy(r.body().bytes().unwrap_or_default()).to_string();
        self.0.lock().unwrap().push((r.method().to_string(), r.uri().to_string(), body));
        Ok(())
    }
}

impl Recorder {
    /// The bodies of the ChangeResourceRecordSets requests (`POST …/rrset`).
    fn changes(&self) -> Vec<String> {
        let calls = self.0.lock().unwrap();
        calls.iter().filter(|(m, u, _)| m == "POST" && u.contains("/rrset")).map(|(_, _, b)| b.clone()).collect()
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

fn unique(test: &str) -> String {
    format!("t-{test}-{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis())
}

async fn client(moto: &Moto, rec: Option<Recorder>) -> Client {
    let sdk = moto.sdk_config().await;
    let mut b = aws_sdk_route53::config::Builder::from(&sdk);
    if let Some(r) = rec {
        b = b.interceptor(r);
    }
    Client::from_conf(b.build())
}

/// A hosted zone of its own for one test, and direct access to it.
struct Zone {
    client: Client,
    id: String,
    domain: String,
}

impl Zone {
    async fn create(client: Client, test: &str) -> Zone {
        let domain = format!("{}.kasm-test.example.com", unique(test));
        let out = client
            .create_hosted_zone()
            .name(&domain)
            .caller_reference(unique(test))
            .send()
            .await
            .expect("create a hosted zone on moto");
        let id = out.hosted_zone().expect("zone").id().to_string();
        Zone { client, id, domain }
    }

    async fn upsert(&self, name: &str, kind: RrType, value: &str) {
        let set = ResourceRecordSet::builder()
            .name(name)
            .r#type(kind)
            .ttl(300)
            .resource_records(ResourceRecord::builder().value(value).build().unwrap())
            .build()
            .unwrap();
        let change = Change::builder().action(ChangeAction::Upsert).resource_record_set(set).build().unwrap();
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.id)
            .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
            .send()
            .await
            .expect("plant a record");
    }

    /// The values of the record set `name`/`kind`, read straight from the zone.
    async fn values(&self, name: &str, kind: RrType) -> Option<Vec<String>> {
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.id)
            .start_record_name(name)
            .send()
            .await
            .expect("list");
        let want = name.trim_end_matches('.').to_ascii_lowercase();
        out.resource_record_sets()
            .iter()
            .find(|rs| rs.name().trim_end_matches('.').to_ascii_lowercase() == want && *rs.r#type() == kind)
            .map(|rs| rs.resource_records().iter().map(|r| r.value().to_string()).collect())
    }
}

#[async_trait]
impl ZoneAccess for Zone {
    async fn put_foreign_a(&self, name: &str, address: Ipv4Addr) {
        self.upsert(name, RrType::A, &address.to_string()).await;
    }

    async fn put_txt(&self, name: &str, text: &str) {
        self.upsert(name, RrType::Txt, &format!("\"{text}\"")).await;
    }

    async fn a_record(&self, name: &str) -> Option<Ipv4Addr> {
        self.values(name, RrType::A).await.and_then(|v| v.first().and_then(|a| a.parse().ok()))
    }

    async fn txt(&self, name: &str) -> Option<Vec<String>> {
        self.values(name, RrType::Txt)
            .await
            .map(|v| v.iter().map(|t| t.trim_start_matches('"').trim_end_matches('"').to_string()).collect())
    }
}

#[tokio::test]
async fn passes_the_conformance_suite_on_moto() {
    let moto = Moto::start();
    let zone = Zone::create(client(&moto, None).await, "conformance").await;
    let dns = Route53Dns::with_client(client(&moto, None).await, &zone.id).expect("backend");
    conformance::run_all_with(&dns, &zone, &zone.domain, &unique("conf"), 5).await;
}

/// Pages of one record set each: a name's A record and marker are read across pages, and the zone
/// listing follows `NextRecordName`/`NextRecordType` to the end.
#[tokio::test]
async fn passes_the_conformance_suite_one_record_set_per_page() {
    let moto = Moto::start();
    let zone = Zone::create(client(&moto, None).await, "paged").await;
    // Neighbours before and after our names in Route 53's order, so pages start and end mid-zone.
    zone.upsert(&format!("a.{}", zone.domain), RrType::A, "192.0.2.1").await;
    zone.upsert(&format!("zz.{}", zone.domain), RrType::Txt, "\"unrelated\"").await;
    let dns = Route53Dns::with_client(client(&moto, None).await, &zone.id).expect("backend").page_size(1);
    conformance::run_all_with(&dns, &zone, &zone.domain, &unique("paged"), 7).await;
}

#[tokio::test]
async fn the_record_and_its_marker_go_in_one_batch_and_an_unchanged_record_sends_nothing() {
    let moto = Moto::start();
    let zone = Zone::create(client(&moto, None).await, "batch").await;
    let rec = Recorder::default();
    let dns = Route53Dns::with_client(client(&moto, Some(rec.clone())).await, &zone.id).unwrap();
    let owner = DnsOwner { deployment: unique("batch"), claim: ClaimId::generate(chrono::Utc::now()) };
    let r = ARecord {
        name: format!("kasm-{}.{}", owner.claim, zone.domain),
        address: Ipv4Addr::new(10, 1, 2, 3),
        ttl: 45,
        owner: owner.clone(),
    };
    dns.upsert_a(&r).await.unwrap();
    let sent = rec.changes();
    assert_eq!(sent.len(), 1, "one ChangeResourceRecordSets: {sent:?}");
    let body = &sent[0];
    for want in [
        "<Action>CREATE</Action>",
        "<Type>A</Type>",
        "<Value>10.1.2.3</Value>",
        "<TTL>45</TTL>",
        "<Type>TXT</Type>",
        &format!("<Value>&quot;{}&quot;</Value>", owner.marker()),
    ] {
        assert!(body.contains(want), "missing {want} in {body}");
    }

    rec.clear();
    dns.upsert_a(&r).await.unwrap();
    assert!(rec.changes().is_empty(), "an unchanged record sent a change: {:?}", rec.changes());

    rec.clear();
    let moved = ARecord { address: Ipv4Addr::new(10, 1, 2, 4), ..r.clone() };
    dns.upsert_a(&moved).await.unwrap();
    let sent = rec.changes();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("<Action>UPSERT</Action>") && sent[0].contains("<Value>10.1.2.4</Value>"), "{}", sent[0]);
    assert!(!sent[0].contains("<Type>TXT</Type>"), "the marker is left as it is: {}", sent[0]);
    assert_eq!(zone.a_record(&r.name).await, Some(moved.address));

    rec.clear();
    dns.delete_a(&r.name, &owner).await.unwrap();
    let sent = rec.changes();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("<Value>10.1.2.4</Value>") && sent[0].contains("<Type>TXT</Type>"), "{}", sent[0]);
    assert_eq!(zone.a_record(&r.name).await, None);
}

#[tokio::test]
async fn a_name_outside_the_zone_is_invalid_and_a_missing_zone_is_not_found() {
    let moto = Moto::start();
    let zone = Zone::create(client(&moto, None).await, "errors").await;
    let dns = Route53Dns::with_client(client(&moto, None).await, &zone.id).unwrap();
    let owner = DnsOwner { deployment: unique("errors"), claim: ClaimId::generate(chrono::Utc::now()) };
    let outside = ARecord {
        name: format!("kasm-{}.elsewhere.example.org", owner.claim),
        address: Ipv4Addr::new(10, 0, 0, 1),
        ttl: 60,
        owner: owner.clone(),
    };
    let e = dns.upsert_a(&outside).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains("ChangeResourceRecordSets: InvalidChangeBatch"), "{e}");

    let gone = Route53Dns::with_client(client(&moto, None).await, "/hostedzone/ZNOSUCHZONE0000").unwrap();
    let e = gone.list_owned("x").await.unwrap_err();
    assert!(matches!(e, DnsError::ZoneNotFound { .. }), "{e:?}");
    let e = gone.delete_a(&outside.name, &owner).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotFound, "{e}");
}

/// The registry builds the backend the way the Lambda does: credentials from the config's secret
/// references, the endpoint from `AWS_ENDPOINT_URL`, no region in the environment (Route 53 is global).
/// `AWS_ENDPOINT_URL` is process-wide, so the checks run in a child process of this test binary.
#[test]
fn the_registry_builds_route53_from_the_config_and_the_environment() {
    let moto = Moto::start();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "registry_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run the child test");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "child failed:\n{text}");
}

#[tokio::test]
#[ignore = "run by the_registry_builds_route53_from_the_config_and_the_environment, with AWS_ENDPOINT_URL set"]
async fn registry_child() {
    use shared::config::DnsProviderConfig;
    use shared::secrets::StaticSecrets;
    assert!(std::env::var("AWS_ENDPOINT_URL").is_ok(), "run through the parent test");
    // The test's own client (moto's placeholder credentials; the endpoint from the environment).
    let sdk = shared::http::aws::config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_route53::config::Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await;
    let zone = Zone::create(Client::new(&sdk), "registry").await;
    let mut map = std::collections::HashMap::new();
    map.insert("env:TEST_AK".to_string(), "testing".to_string());
    map.insert("env:TEST_SK".to_string(), "testing".to_string());
    let secrets: std::sync::Arc<dyn shared::secrets::Secrets> = std::sync::Arc::new(StaticSecrets(map));
    let cfg: DnsProviderConfig = serde_json::from_value(serde_json::json!({
        "provider": "aws", "name": "r53", "hosted_zone_id": zone.id,
        "aws_access_key_id": "env:TEST_AK", "aws_secret_access_key": "env:TEST_SK", "ttl": 30
    }))
    .unwrap();
    let dns = shared::dns::registry::build(&cfg, &secrets).expect("build");
    assert_eq!(dns.name(), "route53");
    let owner = DnsOwner { deployment: unique("registry"), claim: ClaimId::generate(chrono::Utc::now()) };
    let r = ARecord {
        name: format!("kasm-{}.{}", owner.claim, zone.domain),
        address: Ipv4Addr::new(10, 9, 8, 7),
        ttl: cfg.ttl(),
        owner: owner.clone(),
    };
    dns.upsert_a(&r).await.expect("upsert through the registry's backend");
    assert_eq!(zone.a_record(&r.name).await, Some(r.address));
    let listed = dns.list_owned(&owner.deployment).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    dns.delete_a(&r.name, &owner).await.unwrap();
    assert!(dns.list_owned(&owner.deployment).await.unwrap().is_empty());
}
