//! Azure DNS against the test server's zone: the shared DNS conformance suite, the record-set bodies,
//! and an operator's records left alone.

use integration_tests::azure_server::{
    AzureTestServer, CLIENT_ID, CLIENT_SECRET, DNS_RESOURCE_GROUP, SUBSCRIPTION, TENANT, ZONE, Zone,
};
use serde_json::json;
use shared::config::AzureDnsConfig;
use shared::dns::{ARecord, DnsOwner, DnsProvider};
use shared::model::ClaimId;
use shared::providers::azure::dns::AzureDns;
use shared::secrets::StaticSecrets;

fn cfg(server: &AzureTestServer) -> AzureDnsConfig {
    serde_yaml_ng::from_str(&format!(
        r#"
name: az-dns
azure_subscription_id: {SUBSCRIPTION}
azure_resource_group: {DNS_RESOURCE_GROUP}
azure_tenant_id: {TENANT}
azure_client_id: {CLIENT_ID}
azure_client_secret: env:AZ_DNS_SECRET
zone_name: {ZONE}
endpoint_url: {url}
authority_url: {url}
"#,
        url = server.url
    ))
    .expect("config")
}

async fn backend(server: &AzureTestServer) -> AzureDns {
    let secrets = StaticSecrets([("env:AZ_DNS_SECRET".to_string(), CLIENT_SECRET.to_string())].into());
    AzureDns::from_config(&cfg(server), std::sync::Arc::new(secrets)).expect("build")
}

#[tokio::test]
async fn dns_passes_the_dns_conformance_suite() {
    let server = AzureTestServer::start().await;
    server.put_record_set("A", "@", &["1.2.3.4"]);
    server.put_record_set("TXT", "@", &["v=spf1 -all"]);
    let dns = backend(&server).await;
    shared::dns::conformance::run_all_with(&dns, &Zone(server.clone()), ZONE, "conformance-az-dns", 5).await;
    assert_eq!(server.record_set("A", "@").unwrap().values, vec!["1.2.3.4".to_string()]);
    assert_eq!(server.record_set("TXT", "@").unwrap().values, vec!["v=spf1 -all".to_string()]);
}

#[tokio::test]
async fn record_sets_are_put_marker_first_with_the_spec_names() {
    let server = AzureTestServer::start().await;
    let dns = backend(&server).await;
    let owner = DnsOwner { deployment: "prod".into(), claim: ClaimId("01JD2X5Q9ZK3M7B8C1V2N4P6R8".into()) };
    let rec =
        ARecord { name: format!("kasm-1.{ZONE}"), address: "10.1.2.3".parse().unwrap(), ttl: 60, owner: owner.clone() };
    dns.upsert_a(&rec).await.expect("upsert");
    let puts: Vec<_> = server.requests().into_iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 2);
    assert!(puts[0].path.ends_with(&format!("/dnsZones/{ZONE}/TXT/kasm-1")), "{}", puts[0].path);
    assert!(puts[1].path.ends_with(&format!("/dnsZones/{ZONE}/A/kasm-1")), "{}", puts[1].path);
    assert!(puts.iter().all(|r| r.param("api-version") == Some("2018-05-01")));
    let txt: serde_json::Value = serde_json::from_str(&puts[0].body).unwrap();
    assert_eq!(txt, json!({"properties": {"TTL": 60, "TXTRecords": [{"value": [owner.marker()]}]}}));
    let a: serde_json::Value = serde_json::from_str(&puts[1].body).unwrap();
    assert_eq!(a, json!({"properties": {"TTL": 60, "ARecords": [{"ipv4Address": "10.1.2.3"}]}}));
    // Again: the same two record sets, nothing else.
    dns.upsert_a(&rec).await.expect("again");
    assert_eq!(server.record_sets().len(), 2);
    dns.delete_a(&rec.name, &owner).await.expect("delete");
    assert!(server.record_sets().is_empty());
    let owned = dns.list_owned("prod").await.unwrap();
    assert!(owned.is_empty());
}
