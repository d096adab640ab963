//! OCI DNS against the OCI DNS test server (every request's signature checked): the shared DNS
//! conformance suite, the `PatchDomainRecords` bodies, an OCID as the zone, and faults: a lost answer,
//! a change refused as stale, throttling and server errors, a refused key.

use integration_tests::fake_api::Fault;
use integration_tests::oci_server::{
    COMPARTMENT, DNS_ZONE, DNS_ZONE_ID, DnsZone, FINGERPRINT, OciDnsTestServer, TENANCY, TEST_KEY, USER, err,
};
use serde_json::{Value, json};
use shared::config::OciDnsConfig;
use shared::dns::{ARecord, DnsError, DnsOwner, DnsProvider, ErrorClass};
use shared::http::RetryConfig;
use shared::model::ClaimId;
use shared::providers::oci::dns::OciDns;
use shared::secrets::StaticSecrets;
use std::sync::Arc;
use std::time::Duration;

const PATCH: &str = "PATCH /zones/{zoneNameOrId}/records/{domain}";
const GET_DOMAIN: &str = "GET /zones/{zoneNameOrId}/records/{domain}";

fn cfg(server: &OciDnsTestServer, zone: &str) -> OciDnsConfig {
    serde_yaml_ng::from_str(&format!(
        r#"
name: oci-dns
oci_user_ocid: {USER}
oci_public_key_fingerprint: "{FINGERPRINT}"
oci_private_key: env:OCI_DNS_KEY
oci_region: us-phoenix-1
oci_tenancy_ocid: {TENANCY}
oci_compartment_ocid: {COMPARTMENT}
zone_name_or_id: {zone}
ttl: 60
endpoint_url: {url}
"#,
        url = server.url
    ))
    .expect("config")
}

fn backend_with(server: &OciDnsTestServer, zone: &str, key: &str) -> OciDns {
    let secrets = StaticSecrets([("env:OCI_DNS_KEY".to_string(), key.to_string())].into());
    OciDns::from_config(&cfg(server, zone), Arc::new(secrets)).expect("build").with_page_size(2).with_retry(
        RetryConfig {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
            max_retries: 3,
            budget: Duration::from_secs(5),
        },
    )
}

fn backend(server: &OciDnsTestServer) -> OciDns {
    backend_with(server, DNS_ZONE, TEST_KEY)
}

fn owner() -> DnsOwner {
    DnsOwner { deployment: "prod".into(), claim: ClaimId::generate(chrono::Utc::now()) }
}

fn record(o: &DnsOwner, last: u8) -> ARecord {
    ARecord {
        name: format!("kasm-{}.{DNS_ZONE}", o.claim),
        address: [10, 1, 2, last].into(),
        ttl: 60,
        owner: o.clone(),
    }
}

#[tokio::test]
async fn passes_the_dns_conformance_suite() {
    let server = OciDnsTestServer::start().await;
    // An operator's records at the apex stay as they are.
    server.add_record(DNS_ZONE, "A", "192.0.2.10");
    server.add_record(DNS_ZONE, "TXT", "v=spf1 -all");
    let dns = backend(&server);
    shared::dns::conformance::run_all_with(&dns, &DnsZone(server.clone()), DNS_ZONE, "conformance-oci-dns", 5).await;
    // The operator's records at the apex are untouched (the suite's own foreign records at other
    // names stay too: they are not ours).
    let left: Vec<_> =
        server.records().into_iter().filter(|r| r.domain == DNS_ZONE).map(|r| (r.domain, r.rtype, r.rdata)).collect();
    assert_eq!(
        left,
        vec![
            (DNS_ZONE.to_string(), "A".to_string(), "192.0.2.10".to_string()),
            (DNS_ZONE.to_string(), "TXT".to_string(), "\"v=spf1 -all\"".to_string())
        ]
    );
}

#[tokio::test]
async fn changes_are_one_patch_with_preconditions_in_the_sdk_wire_names() {
    let server = OciDnsTestServer::start().await;
    let dns = backend(&server);
    let o = owner();
    let mut r = record(&o, 3);
    dns.upsert_a(&r).await.expect("upsert");
    let patches: Vec<_> = server.api().requests().into_iter().filter(|q| q.method == "PATCH").collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].path, format!("/zones/{DNS_ZONE}/records/{}", r.name));
    assert_eq!(patches[0].query, "");
    let body: Value = serde_json::from_str(&patches[0].body).unwrap();
    let marker = format!("\"{}\"", o.marker());
    assert_eq!(
        body,
        json!({"items": [
            {"domain": r.name, "rtype": "TXT", "operation": "PROHIBIT"},
            {"domain": r.name, "rtype": "A", "operation": "PROHIBIT"},
            {"domain": r.name, "rtype": "A", "rdata": "10.1.2.3", "ttl": 60, "operation": "ADD"},
            {"domain": r.name, "rtype": "TXT", "rdata": marker, "ttl": 60, "operation": "ADD"}
        ]})
    );
    // The same record again: read, nothing to change, no PATCH.
    dns.upsert_a(&r).await.expect("again");
    assert_eq!(server.patches(), 1);
    // A new address: the marker required as read, the old A removed, the new one added.
    r.address = [10, 1, 2, 4].into();
    dns.upsert_a(&r).await.expect("moved");
    let last = server.api().requests().into_iter().rfind(|q| q.method == "PATCH").unwrap();
    let body: Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(
        body,
        json!({"items": [
            {"domain": r.name, "rtype": "TXT", "rdata": marker, "operation": "REQUIRE"},
            {"domain": r.name, "rtype": "A", "rdata": "10.1.2.3", "operation": "REMOVE"},
            {"domain": r.name, "rtype": "A", "rdata": "10.1.2.4", "ttl": 60, "operation": "ADD"}
        ]})
    );
    dns.delete_a(&r.name, &o).await.expect("delete");
    assert!(server.records().is_empty(), "{:?}", server.records());
    // Reads page by `limit`/`page`; nothing sends the deprecated compartmentId.
    let reads = server.api().requests().into_iter().filter(|q| q.method == "GET").collect::<Vec<_>>();
    assert!(reads.iter().all(|q| q.param("compartmentId").is_none()));
    assert!(reads.iter().filter(|q| q.path.contains("/records")).all(|q| q.param("limit") == Some("2")));
}

#[tokio::test]
async fn the_zone_may_be_named_by_its_ocid_and_names_outside_it_are_refused() {
    let server = OciDnsTestServer::start().await;
    let dns = backend_with(&server, DNS_ZONE_ID, TEST_KEY);
    let o = owner();
    let r = record(&o, 5);
    dns.upsert_a(&r).await.expect("upsert through the zone's OCID");
    assert!(
        server
            .api()
            .requests()
            .iter()
            .filter(|q| q.method == "PATCH")
            .all(|q| q.path.starts_with(&format!("/zones/{DNS_ZONE_ID}/")))
    );
    assert_eq!(dns.list_owned("prod").await.unwrap().len(), 1);
    let outside = ARecord { name: format!("kasm-{}.example.org", o.claim), ..r.clone() };
    let e = dns.upsert_a(&outside).await.expect_err("outside the zone");
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    // A zone that does not exist: NotFound naming the zone and the call.
    let missing = backend_with(&server, "other.example.com", TEST_KEY);
    let e = missing.delete_a(&r.name, &o).await.expect_err("no such zone");
    assert!(matches!(e, DnsError::ZoneNotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("GetZone") && e.to_string().contains("other.example.com"), "{e}");
}

#[tokio::test]
async fn a_lost_answer_and_a_stale_read_are_recomputed_and_end_as_one_record() {
    let server = OciDnsTestServer::start().await;
    let dns = backend(&server);
    let o = owner();
    let r = record(&o, 7);
    // The PATCH is applied but its answer is lost: the retry is refused by its own PROHIBIT, the
    // records are read again, and they are already ours.
    server.api().inject(PATCH, Fault::DropAnswer, 0, 1);
    dns.upsert_a(&r).await.expect("upsert after a lost answer");
    assert_eq!(server.patches(), 1);
    let zone = DnsZone(server.clone());
    use shared::dns::conformance::ZoneAccess;
    assert_eq!(zone.a_record(&r.name).await, Some(r.address));
    assert_eq!(zone.txt(&r.name).await, Some(vec![o.marker()]));

    // Another writer changed the name between our read and our change: 412, read again, done.
    let moved = ARecord { address: [10, 1, 2, 8].into(), ..r.clone() };
    server.api().inject(PATCH, Fault::Answer(err(412, "PreconditionFailed", "A precondition failed.")), 0, 1);
    dns.upsert_a(&moved).await.expect("recomputed after 412");
    assert_eq!(zone.a_record(&r.name).await, Some(moved.address));

    // Refused as stale every time: Conflict after the attempts, nothing changed.
    server.api().inject(PATCH, Fault::Answer(err(412, "PreconditionFailed", "A precondition failed.")), 0, 10);
    let e = dns.delete_a(&r.name, &o).await.expect_err("always stale");
    assert_eq!(e.class(), ErrorClass::Conflict, "{e}");
    assert!(e.is_retryable());
    server.api().clear_faults();
    dns.delete_a(&r.name, &o).await.expect("deleted");
    assert!(server.records().is_empty());
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_their_classes_kept() {
    let server = OciDnsTestServer::start().await;
    let dns = backend(&server);
    let o = owner();
    let r = record(&o, 9);
    server.api().inject(
        GET_DOMAIN,
        Fault::Answer(err(429, "TooManyRequests", "Too many requests").header("retry-after", "0")),
        0,
        1,
    );
    server.api().inject(PATCH, Fault::Answer(err(500, "InternalServerError", "Internal error")), 0, 1);
    dns.upsert_a(&r).await.expect("retried through a 429 and a 500");
    assert_eq!(server.patches(), 1);
    // Past the retries: the class the caller backs off by.
    server.api().inject(
        GET_DOMAIN,
        Fault::Answer(err(429, "TooManyRequests", "Too many requests").header("retry-after", "1")),
        0,
        10,
    );
    let e = dns.delete_a(&r.name, &o).await.expect_err("throttled");
    assert_eq!(e.class(), ErrorClass::RateLimited, "{e}");
    server.api().clear_faults();
    server.api().inject(GET_DOMAIN, Fault::Answer(err(503, "ServiceUnavailable", "down")), 0, 10);
    let e = dns.delete_a(&r.name, &o).await.expect_err("down");
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    server.api().clear_faults();
    dns.delete_a(&r.name, &o).await.expect("deleted");
}

#[tokio::test]
async fn a_wrong_key_is_auth_and_never_echoes_the_key() {
    let server = OciDnsTestServer::start().await;
    let other = include_str!("other-key.pem");
    let dns = backend_with(&server, DNS_ZONE, other);
    let e = dns.list_owned("prod").await.expect_err("refused");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(e.to_string().contains("oci_private_key") && !e.to_string().contains("BEGIN"), "{e}");
    let dns = backend_with(&server, DNS_ZONE, "not a key");
    let e = dns.list_owned("prod").await.expect_err("no key");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(!e.to_string().contains("not a key"), "{e}");
    // Nothing was written, and a refused key is not a record error.
    assert!(server.records().is_empty());
}
